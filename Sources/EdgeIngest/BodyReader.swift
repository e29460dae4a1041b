import EdgeStore

/// Reads the JSON of a platform request body with the project's scanner (`JSON.members`,
/// `JSON.elements`), turning syntax and shape errors into 400s that name the field.
enum BodyReader {
    static func object(_ raw: [UInt8], field: String, example: String) throws(IngestError) -> [JSON.Member] {
        do { return try JSON.members(of: raw) } catch {
            throw IngestError(field: field, reason: "is not a JSON object (\(error))", hint: "Send e.g. \(example).")
        }
    }

    static func array(_ member: JSON.Member?, field: String, example: String, max: Int? = nil) throws(IngestError) -> [JSON.Element] {
        guard let member else { throw IngestError(field: field, reason: "is missing", hint: "Send e.g. \(example).") }
        guard member.type == .array else {
            throw IngestError(field: field, reason: "must be a JSON array, not \(member.type.withArticle)", hint: "Send e.g. \(example).")
        }
        let elements: [JSON.Element]
        do { elements = try JSON.elements(of: member.raw) } catch {
            throw IngestError(field: field, reason: "is not a valid JSON array (\(error))", hint: "Send e.g. \(example).")
        }
        guard !elements.isEmpty else { throw IngestError(field: field, reason: "is empty", hint: "Send at least one, e.g. \(example).") }
        if let max, elements.count > max {
            throw IngestError(field: field, reason: "holds \(elements.count) entries, over the platform's limit of \(max)", hint: "Send at most \(max) per request.")
        }
        return elements
    }

    /// Refuses a member not in `allowed`: a typo would otherwise drop data silently.
    static func only(_ members: [JSON.Member], _ allowed: [String], at prefix: String) throws(IngestError) {
        for member in members where !allowed.contains(member.key) {
            let key = member.key.count > 64 ? String(member.key.prefix(64)) + "…" : member.key
            throw IngestError(field: prefix.isEmpty ? key : "\(prefix).\(key)", reason: "is not a field of this request",
                              hint: "The fields are: \(allowed.joined(separator: ", ")).")
        }
    }

    static func string(_ member: JSON.Member?, field: String) throws(IngestError) -> String? {
        guard let member else { return nil }
        guard let value = member.string else {
            throw IngestError(field: field, reason: "must be a JSON string, not \(member.type.withArticle)", hint: "Quote the value.")
        }
        return value
    }
}

extension Array where Element == JSON.Member {
    subscript(key: String) -> JSON.Member? { first { $0.key == key } }
}
