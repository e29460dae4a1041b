extension RecordInput {
    /// Checks a device id as records do (1 to 128 of `[A-Za-z0-9_-]`), for callers that take
    /// one outside a record (the ingest server's `device-auth`).
    public static func checkedIdentifier(_ value: String, field: String = "device_id") throws(ValidationError) -> String {
        try identifier(value, field: field, what: "device")
    }
}
