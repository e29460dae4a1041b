import CSQLite
import EdgeStore
import EdgeUplink
import Foundation

/// The physical limit of draining: the durable work the sync engine must do for each
/// request, done straight on the C APIs with nothing else (WAL, synchronous FULL, as edgebuf
/// opens the file):
///
/// 1. select the oldest records of the most urgent class with the engine's filter (the
///    uplink's kinds, its device), stepping only as far as a 1 MB `{"services":[...]}` body fills;
/// 2. POST the body on one reused curl handle;
/// 3. in ONE transaction: delete the records (`DELETE … WHERE id BETWEEN ? AND ?` per run of
///    consecutive ids), subtract them from `outbox_totals`, append the request's audit row
///    (the body's SHA-256 in the detail, chained to the previous row's hash as `AuditLog`
///    does), commit.
///
/// What it leaves out is what the engine adds beyond the durable work: the state machine,
/// its status row, packing several kinds and devices, logging. Blocking: run it on a thread
/// of its own.
enum RawDrain {
    /// IoTDA's body limit, as the engine counts it.
    static let maxBodyBytes = 1_048_576

    struct Result: Sendable {
        var records = 0
        var requests = 0
        var bodyBytes = 0
        var seconds = 0.0
    }

    /// What the baseline does, for the report.
    static let summary = "raw C drain: select <= 1 MB, curl POST, one txn: range delete + totals + audit row (body SHA-256)"

    /// Drains the outbox at `path` to `url` as fast as the C APIs go. Timed from the open to
    /// the last commit, authentication included (one request, as the engine does).
    static func drain(path: String, url: String, device: String, secret: DeviceSecret) throws -> Result {
        var result = Result()
        let start = DispatchTime.now().uptimeNanoseconds
        let poster = try RawPoster(baseURL: url)
        try poster.authenticate(device: device, secret: secret)
        let requestPath = Platform.propertiesReportPath(device: device)
        try poster.setURL(url + requestPath)

        let db = try SQLite(path: path)
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        // The engine's window query (an IoTDA uplink: its kinds, its device), minus the columns
        // only the packer needs to tell kinds and children apart.
        let selectSQL = "SELECT id, payload FROM outbox WHERE class = ? AND id > 0 AND kind IN ('property','message','child_property') AND target = ? ORDER BY id"
        let select = try db.prepare(selectSQL)
        let deleteSQL = "DELETE FROM outbox WHERE id BETWEEN ? AND ?"
        let delete = try db.prepare(deleteSQL)
        let totalsSQL = "UPDATE outbox_totals SET records = records + ?, bytes = bytes + ? WHERE class = ?"
        let totals = try db.prepare(totalsSQL)
        let headSQL = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
        let head = try db.prepare(headSQL)
        let auditSQL = "INSERT INTO audit (seq, at, event, detail, hash) VALUES (?, ?, ?, ?, ?)"
        let audit = try db.prepare(auditSQL)
        var body: [UInt8] = []
        body.reserveCapacity(maxBodyBytes)
        var ids: [Int64] = []
        var cls: Int32 = 0
        while cls <= 2 {
            body.removeAll(keepingCapacity: true)
            body.append(contentsOf: RecordKind.servicesPrefix)
            ids.removeAll(keepingCapacity: true)
            var payloadBytes: Int64 = 0
            try db.check(sqlite3_bind_int(select, 1, cls), selectSQL)
            try db.bindText(select, 2, device, selectSQL)
            // Step only as far as the body fills: the row that would not fit is the next
            // request's first.
            while try db.step(select) {
                let count = Int(sqlite3_column_bytes(select, 1))
                let separator = ids.isEmpty ? 0 : 1
                if body.count + separator + count + RecordKind.arraySuffix.count > maxBodyBytes { break }
                if separator == 1 { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: UnsafeRawBufferPointer(start: sqlite3_column_blob(select, 1), count: count))
                ids.append(sqlite3_column_int64(select, 0))
                payloadBytes += Int64(count)
            }
            sqlite3_reset(select)
            if ids.isEmpty {
                cls += 1
                continue
            }
            body.append(contentsOf: RecordKind.arraySuffix)
            let posted = DispatchTime.now().uptimeNanoseconds
            try poster.postExpectingSuccess(body)
            let durationMilliseconds = Int64((DispatchTime.now().uptimeNanoseconds - posted) / 1_000_000)
            let now = Int64(Date().timeIntervalSince1970 * 1000)

            try db.execute("BEGIN IMMEDIATE")
            var deleted = 0
            var run = 0
            while run < ids.count {
                var last = run
                while last + 1 < ids.count && ids[last + 1] == ids[last] + 1 { last += 1 }
                try db.check(sqlite3_bind_int64(delete, 1, ids[run]), deleteSQL)
                try db.check(sqlite3_bind_int64(delete, 2, ids[last]), deleteSQL)
                _ = try db.step(delete)
                sqlite3_reset(delete)
                deleted += Int(sqlite3_changes(db.handle))
                run = last + 1
            }
            guard deleted == ids.count else { throw BenchError("the raw drain deleted \(deleted) of \(ids.count) records") }
            try db.check(sqlite3_bind_int64(totals, 1, -Int64(ids.count)), totalsSQL)
            try db.check(sqlite3_bind_int64(totals, 2, -payloadBytes), totalsSQL)
            try db.check(sqlite3_bind_int(totals, 3, cls), totalsSQL)
            _ = try db.step(totals)
            sqlite3_reset(totals)

            var seq: Int64 = 1
            var previous = [UInt8](repeating: 0, count: 32)
            if try db.step(head) {
                seq = sqlite3_column_int64(head, 0) + 1
                previous = Array(UnsafeRawBufferPointer(start: sqlite3_column_blob(head, 1), count: Int(sqlite3_column_bytes(head, 1))))
            }
            sqlite3_reset(head)
            let detail = #"{"platform":"iotda","path":"\#(requestPath)","records":\#(ids.count),"first_id":\#(ids[0]),"last_id":\#(ids[ids.count - 1]),"body_bytes":\#(body.count),"body_sha256":"\#(Hex.sha256(body))","http_status":200,"error_code":null,"duration_ms":\#(durationMilliseconds),"outcome":"delivered","attempt":1}"#
            // SHA-256(previous || seq || at || event || 0 || detail), integers big-endian: AuditLog's chain.
            var preimage = previous
            withUnsafeBytes(of: seq.bigEndian) { preimage.append(contentsOf: $0) }
            withUnsafeBytes(of: now.bigEndian) { preimage.append(contentsOf: $0) }
            preimage.append(contentsOf: Array("request".utf8) + [0])
            preimage.append(contentsOf: Array(detail.utf8))
            let hash = Hex.sha256Digest(preimage)
            try db.check(sqlite3_bind_int64(audit, 1, seq), auditSQL)
            try db.check(sqlite3_bind_int64(audit, 2, now), auditSQL)
            try db.bindText(audit, 3, "request", auditSQL)
            try db.bindText(audit, 4, detail, auditSQL)
            try hash.withUnsafeBytes { try db.check(sqlite3_bind_blob(audit, 5, $0.baseAddress, Int32($0.count), csqlite_transient()), auditSQL) }
            _ = try db.step(audit)
            sqlite3_reset(audit)
            try db.execute("COMMIT")
            result.records += ids.count
            result.requests += 1
            result.bodyBytes += body.count
        }
        for stmt in [select, delete, totals, head, audit] { db.finalize(stmt) }
        result.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return result
    }

    /// Checks after the raw drain (untimed) that it did the engine's durable work: the audit
    /// chain verifies with edgebuf's own verifier and holds one request row per POST, and the
    /// totals came down to zero.
    static func verify(path: String, requests: Int) throws {
        let db = try Database.openPrepared(path: path)
        let verification = try AuditLog(db).verify()
        guard verification.isIntact else { throw BenchError("the raw drain's audit does not verify: \(verification.problem ?? "")") }
        let rows = try db.scalarInt("SELECT count(*) FROM audit WHERE event = 'request'")
        guard rows == requests else { throw BenchError("the raw drain wrote \(rows) request audit rows for \(requests) POSTs") }
        let total = try OutboxStore(db).total()
        guard total == OutboxTotals() else { throw BenchError("the raw drain left totals \(total.records) records, \(total.bytes) bytes") }
    }

    /// The bodies the raw drain would send for `payloads` (oldest first): each as many
    /// records as fit in 1 MB.
    static func bodies(_ payloads: [[UInt8]]) -> [[UInt8]] {
        var bodies: [[UInt8]] = []
        var body = RecordKind.servicesPrefix
        var inBody = 0
        for payload in payloads {
            if body.count + (inBody > 0 ? 1 : 0) + payload.count + RecordKind.arraySuffix.count > maxBodyBytes {
                bodies.append(body + RecordKind.arraySuffix)
                body = RecordKind.servicesPrefix
                inBody = 0
            }
            if inBody > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: payload)
            inBody += 1
        }
        if inBody > 0 { bodies.append(body + RecordKind.arraySuffix) }
        return bodies
    }

    /// The transport ceiling: POSTs of prebuilt bodies on one reused handle, nothing else,
    /// `rounds` times over (one round takes only tens of ms). Only the POSTs are timed
    /// (authentication happens first).
    static func postOnly(bodies: [[UInt8]], records: Int, rounds: Int, url: String, device: String, secret: DeviceSecret) throws -> Result {
        let poster = try RawPoster(baseURL: url)
        try poster.authenticate(device: device, secret: secret)
        try poster.setURL(url + Platform.propertiesReportPath(device: device))
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<rounds {
            for body in bodies { try poster.postExpectingSuccess(body) }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(records: records * rounds, requests: bodies.count * rounds,
                      bodyBytes: bodies.reduce(0) { $0 + $1.count } * rounds, seconds: seconds)
    }
}

/// A bare `sqlite3*` for the raw drain: every call goes through `check`, which keeps the
/// extended result code and the SQL. Not Sendable: one thread.
final class SQLite {
    let handle: OpaquePointer

    init(path: String) throws {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            sqlite3_close(db)
            throw BenchError("cannot open \(path): SQLite error \(rc)")
        }
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 10_000)
        handle = db
    }

    deinit { sqlite3_close_v2(handle) }

    func check(_ rc: Int32, _ sql: String) throws {
        guard rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE else { return }
        throw BenchError("SQLite error \(sqlite3_extended_errcode(handle)) (\(String(cString: sqlite3_errmsg(handle)))) in: \(sql)")
    }

    func execute(_ sql: String) throws {
        try check(sqlite3_exec(handle, sql, nil, nil, nil), sql)
    }

    /// Binds `text` (copied by SQLite).
    func bindText(_ stmt: OpaquePointer, _ index: Int32, _ text: String, _ sql: String) throws {
        var text = text
        let rc = text.withUTF8 { utf8 in
            sqlite3_bind_text(stmt, index, UnsafeRawPointer(utf8.baseAddress!).assumingMemoryBound(to: CChar.self), Int32(utf8.count), csqlite_transient())
        }
        try check(rc, sql)
    }

    func prepare(_ sql: String) throws -> OpaquePointer {
        var stmt: OpaquePointer?
        try check(sqlite3_prepare_v2(handle, sql, -1, &stmt, nil), sql)
        guard let stmt else { throw BenchError("empty statement: \(sql)") }
        return stmt
    }

    /// True for a row, false when done.
    func step(_ stmt: OpaquePointer) throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let sql = String(cString: sqlite3_sql(stmt))
        sqlite3_reset(stmt)
        try check(rc, sql)
        return false
    }

    func finalize(_ stmt: OpaquePointer) { sqlite3_finalize(stmt) }
}
