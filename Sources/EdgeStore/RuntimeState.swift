/// What a running engine is doing, for `edgebuf status` in another process: one row per
/// component (`uplink`, `downlink`) holding a JSON object without secrets.
public enum RuntimeState {
    /// Replaces the component's state. Call inside a write transaction.
    public static func save(_ db: Connection, component: String, state: JSONObject, at: Int64) throws {
        let stmt = try db.cached("INSERT INTO runtime_state (component, updated_at, state) VALUES (?, ?, ?) ON CONFLICT(component) DO UPDATE SET updated_at = excluded.updated_at, state = excluded.state")
        try stmt.bind(component, at: 1)
        try stmt.bind(at, at: 2)
        try stmt.bind(state.json, at: 3)
        try stmt.run()
    }

    /// The component's last state (a JSON object) and when it was written, if ever.
    public static func load(_ db: Connection, component: String) throws -> (updatedAt: Int64, state: String)? {
        let stmt = try db.cached("SELECT updated_at, state FROM runtime_state WHERE component = ?")
        try stmt.bind(component, at: 1)
        defer { stmt.reset() }
        return try stmt.step() ? (stmt.int64(0), stmt.text(1)) : nil
    }
}
