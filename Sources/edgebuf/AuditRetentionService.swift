import EdgeBuffer
import EdgeStore
import Logging
import ServiceLifecycle

/// Keeps the audit within `[audit] max_rows` / `max_age` while `edgebuf run` runs: at start
/// and then once a minute, the oldest rows beyond the policy are removed (50,000 per
/// transaction) with an `audit_purged` row that keeps the chain verifiable. Without it the
/// audit, one row per request and per received batch, would grow without bound, and a file at
/// `max_file_bytes` would stay full after the outbox drained.
struct AuditRetentionService: Service {
    let path: String
    let options: DatabaseOptions
    let retention: AuditRetention
    let logger: Logger
    var interval: Duration = .seconds(60)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                purge()
                // A Dispatch timer: a pending Task.sleep wakes a thread every second (DispatchSleep).
                await DispatchSleep.sleep(for: interval)
            }
        }
    }

    /// One round: purges until nothing more is due. A failure (a busy or full file) is
    /// logged and retried next round; it never stops the daemon.
    func purge() {
        do {
            let db = try Database.open(path: path, options: options)
            var removed: Int64 = 0
            while !Task.isCancelled {
                let now = Timestamp.nowMilliseconds()
                let count = try db.transaction { try AuditLog(db).purge(retention, now: now) }
                removed += count
                if count == 0 { break }
            }
            if removed > 0 {
                logger.info("audit retention removed the oldest rows", metadata: ["edgebuf.audit.removed": "\(removed)"])
            }
        } catch {
            logger.warning("audit retention could not run; retrying in a minute", metadata: ["edgebuf.audit.error": "\(error)"])
        }
    }
}
