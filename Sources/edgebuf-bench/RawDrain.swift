import CSQLite
import EdgeStore
import EdgeUplink
import Foundation

/// The physical limit of draining: the same work as the sync engine done straight on the C
/// APIs, with nothing else. Select the oldest records up to a 1 MB body, build
/// `{"services":[p1,p2,...]}`, POST it on one reused curl handle, delete those ids in one
/// transaction (WAL, synchronous FULL, as edgebuf opens the file). Blocking: run it on a
/// thread of its own.
enum RawDrain {
    /// IoTDA's body limit, as the engine counts it.
    static let maxBodyBytes = 1_048_576

    struct Result: Sendable {
        var records = 0
        var requests = 0
        var bodyBytes = 0
        var seconds = 0.0
    }

    /// Drains the outbox at `path` to `url` as fast as the C APIs go. Timed from the open to
    /// the last commit, authentication included (one request, as the engine does).
    static func drain(path: String, url: String, device: String, secret: DeviceSecret) throws -> Result {
        var result = Result()
        let start = DispatchTime.now().uptimeNanoseconds
        let poster = try RawPoster(baseURL: url)
        try poster.authenticate(device: device, secret: secret)
        try poster.setURL(url + Platform.propertiesReportPath(device: device))

        let db = try SQLite(path: path)
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        let select = try db.prepare("SELECT id, payload FROM outbox ORDER BY id LIMIT 10000")
        let delete = try db.prepare("DELETE FROM outbox WHERE id = ?")
        var body: [UInt8] = []
        body.reserveCapacity(maxBodyBytes)
        var ids: [Int64] = []
        while true {
            body.removeAll(keepingCapacity: true)
            body.append(contentsOf: RecordKind.servicesPrefix)
            ids.removeAll(keepingCapacity: true)
            // Step only as far as the body fills: the row that would not fit is the next
            // request's first.
            while try db.step(select) {
                let count = Int(sqlite3_column_bytes(select, 1))
                let separator = ids.isEmpty ? 0 : 1
                if body.count + separator + count + RecordKind.arraySuffix.count > maxBodyBytes { break }
                if separator == 1 { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: UnsafeRawBufferPointer(start: sqlite3_column_blob(select, 1), count: count))
                ids.append(sqlite3_column_int64(select, 0))
            }
            sqlite3_reset(select)
            if ids.isEmpty { break }
            body.append(contentsOf: RecordKind.arraySuffix)
            try poster.postExpectingSuccess(body)
            try db.execute("BEGIN IMMEDIATE")
            for id in ids {
                try db.check(sqlite3_bind_int64(delete, 1, id), "DELETE FROM outbox WHERE id = ?")
                _ = try db.step(delete)
                sqlite3_reset(delete)
            }
            try db.execute("COMMIT")
            result.records += ids.count
            result.requests += 1
            result.bodyBytes += body.count
        }
        db.finalize(select)
        db.finalize(delete)
        result.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return result
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
