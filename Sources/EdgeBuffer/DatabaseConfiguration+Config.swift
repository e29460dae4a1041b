import EdgeStore

extension OutboxConfiguration {
    /// Reads `[database]`, `[audit]` (and the body limit from `[uplink]`).
    public init(document: ConfigDocument) throws {
        self.init()
        let section = try document.section("database")
        if let mode = try section.string("synchronous") {
            guard let value = SynchronousMode(rawValue: mode) else {
                throw section.error("synchronous", "must be \"full\" or \"normal\" (see Guarantees in the README)")
            }
            database.synchronous = value
        }
        if let s = try section.seconds("busy_timeout", range: 0...3600) { database.busyTimeoutSeconds = s }
        if let b = try section.bool("check_on_open") { database.checkOnOpen = b }
        if let b = try section.bytes("max_bytes", range: 1024...(1 << 50)) { database.capacity.maxBytes = b }
        if let n = try section.int("max_records", range: 1...Int64(Int32.max) * 16) { database.capacity.maxRecords = n }
        if let s = try section.seconds("max_age", range: 1...(86400 * 3650)) { database.capacity.maxAgeMilliseconds = Int64(s * 1000) }
        if let policy = try section.string("when_full") {
            guard let value = FullPolicy(rawValue: policy) else {
                throw section.error("when_full", "must be \"reject-new\" or \"drop-oldest\"")
            }
            database.capacity.whenFull = value
        }
        if let b = try section.bytes("max_file_bytes", range: (64 * 1024)...(1 << 50)) { database.maxFileBytes = b }
        let audit = try document.section("audit")
        if let n = try audit.int("max_rows", range: 1000...(1 << 40)) { database.auditRetention.maxRows = n }
        if let s = try audit.seconds("max_age", range: 3600...(86400 * 3650)) { database.auditRetention.maxAgeMilliseconds = Int64(s * 1000) }
        let uplink = try document.section("uplink")
        if let b = try uplink.bytes("max_body_bytes", range: 1024...(64 << 20)) { maxBodyBytes = Int(b) }
    }
}
