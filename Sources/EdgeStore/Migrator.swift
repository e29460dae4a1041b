/// Applies the embedded `migrations/vNNNN_*.sql` files in order, each in its own transaction.
/// `PRAGMA user_version` holds the version reached; `PRAGMA application_id` marks the file.
public enum Migrator {
    /// Brings the schema to the latest version. Safe to run from several processes at once:
    /// the version is re-read under the write lock.
    public static func migrate(_ connection: Connection) throws {
        try migrate(connection, migrations: embeddedMigrations)
    }

    static func migrate(_ connection: Connection, migrations: [(version: Int, name: String, sql: String)]) throws {
        for migration in migrations {
            try connection.transaction {
                let current = Int(try connection.scalarInt("PRAGMA user_version"))
                guard current < migration.version else { return }
                try connection.execute(migration.sql)
                try connection.execute("PRAGMA user_version = \(migration.version)")
                if current == 0 {
                    try connection.execute("PRAGMA application_id = \(Database.applicationID)")
                }
            }
        }
    }

    /// The schema version of an open database.
    public static func version(of connection: Connection) throws -> Int {
        Int(try connection.scalarInt("PRAGMA user_version"))
    }
}
