import EdgeStore

/// The `[database]` section: where records live and how much may pile up.
public struct DatabaseConfiguration: Sendable, Equatable {
    /// `synchronous`: full (default) or normal.
    public var synchronous: SynchronousMode = .full
    /// `busy_timeout` in seconds: how long a write waits for another process.
    public var busyTimeoutSeconds: Double = 10
    /// `check_on_open`: run `PRAGMA quick_check` when opening.
    public var checkOnOpen: Bool = true
    /// `max_bytes`, `max_records`, `max_age`, `when_full`.
    public var capacity = CapacityPolicy()
    /// `max_file_bytes`: hard cap on the file (SQLite `max_page_count`); nil for none.
    public var maxFileBytes: Int64? = nil
    /// `[audit] max_rows`, `max_age`: how long `edgebuf run` keeps audit rows.
    public var auditRetention = AuditRetention()

    public init() {}

    /// The options for `Database.open`.
    public var options: DatabaseOptions {
        var options = DatabaseOptions()
        options.synchronous = synchronous
        options.busyTimeoutMilliseconds = Int32(min(busyTimeoutSeconds * 1000, Double(Int32.max)))
        options.checkOnOpen = checkOnOpen
        // SQLite's default page size here is 4096 bytes.
        options.maxPageCount = maxFileBytes.map { Int(max($0 / 4096, 16)) }
        return options
    }
}

/// The outbox's own settings.
public struct OutboxConfiguration: Sendable, Equatable {
    public var database = DatabaseConfiguration()
    /// The platform's request body limit: a record that could not fit alone is refused at enqueue.
    public var maxBodyBytes: Int = 1_048_576

    public init() {}
}
