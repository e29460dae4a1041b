import EdgeStore
import Foundation

/// The idempotency key of a received notification: the inbox inserts a notification only if
/// no row has the same key, so a redelivery (after a re-handshake, a retried connect whose
/// first answer was lost, a duplicate inside one answer) is stored once.
///
/// The Bayeux message `id` is NOT part of it: it is unique only within one session, and a
/// redelivery in a new session gets a new one.
///
/// The key is `[channel, id, action, version]`, written as a JSON array of four strings (so
/// no separator can be forged by a value):
/// - **channel**: the Bayeux channel (`/operations/12345`).
/// - **id**: the data's own `id`. Cumulocity wraps the object in `{"realtimeAction", "data"}`:
///   the id is then `data.id` (on DELETE `data` may be only the id, a string or number).
/// - **action**: `realtimeAction` (`CREATE`, `UPDATE`, `DELETE`), empty when absent.
/// - **version**: what tells two versions of the same object apart. On DELETE: empty (a
///   deletion is final). Otherwise `lastUpdated:<value>` when the object has `lastUpdated`
///   (the platform's own version stamp, bumped by every change), else `sha256:<hex>` of the
///   object's canonical JSON (`KeyJSON`: members sorted by name, no whitespace, strings with
///   the fewest escapes, numbers as written; built without Foundation). Fields such as `status`, `count` or
///   `creationTime` are covered by the hash: an operation going PENDING → EXECUTING, or an
///   alarm whose count goes 2 → 3, is a new version, while a byte-for-byte redelivery is not.
///
/// Without an id the key is `[channel, "", action, "sha256:<hex of the whole data>"]`: a pure
/// content hash.
///
/// The trade-off, chosen on purpose: a redelivery whose content differs (not seen from real
/// servers) is stored twice, rather than risking that a genuine update is dropped as a
/// duplicate. Consumers must tolerate duplicates anyway (Bayeux is at most once per session,
/// and the gap marker tells them to re-fetch).
///
/// The key is read from the data's stored bytes, not from a Foundation value: until issue 12
/// the hash covered `JSONSerialization`'s sorted-keys output, which spells numbers and escapes
/// its own way. So a content-hashed notification stored by an older edgebuf and delivered
/// again after the upgrade (within the one session a restart ends anyway) is stored a second
/// time; `lastUpdated` and DELETE keys are unchanged.
public struct NotificationKey: Hashable, Sendable, CustomStringConvertible {
    /// The key as stored: a JSON array of `[channel, id, action, version]`.
    public let value: String
    /// The components, for diagnostics.
    public let channel: String
    public let dataID: String?
    public let action: String?
    public let version: String

    init(channel: String, dataID: String?, action: String?, version: String) {
        self.channel = channel
        self.dataID = dataID
        self.action = action
        self.version = version
        var text: [UInt8] = [UInt8(ascii: "[")]
        text.reserveCapacity(channel.utf8.count + (dataID?.utf8.count ?? 0) + version.utf8.count + 32)
        for (index, part) in [channel, dataID ?? "", action ?? "", version].enumerated() {
            if index > 0 { text.append(UInt8(ascii: ",")) }
            JSON.appendString(part, to: &text)
        }
        text.append(UInt8(ascii: "]"))
        self.value = String(decoding: text, as: UTF8.self)
    }

    public var description: String { value }

    /// The key of one event's data on `channel`, from the data's JSON text as stored (see
    /// `InboxNotification.data`). Read without Foundation (`KeyJSON`); text that does not parse
    /// (not possible for what the parser hands over) is keyed by the hash of its bytes.
    public static func make(channel: String, json: [UInt8]) -> NotificationKey {
        guard let tree = try? KeyJSON(json) else {
            return NotificationKey(channel: channel, dataID: nil, action: nil, version: "sha256:" + Hex.sha256(json))
        }
        var inner = tree.root
        var action: String? = nil
        if let realtimeAction = tree.string(tree.member(tree.root, "realtimeAction")) {
            action = realtimeAction
            if let wrapped = tree.member(tree.root, "data") {
                // The docs show the object both bare and as a one-element array.
                if case .array(let items) = wrapped, items.count == 1 { inner = items[0] } else { inner = wrapped }
            }
        }
        let dataID: String?
        switch inner {
        case .object:
            dataID = idString(tree, tree.member(inner, "id"))
        case .string, .scalar:
            // DELETE carries only the id.
            dataID = action != nil ? idString(tree, inner) : nil
        case .array:
            dataID = nil
        }
        guard let dataID else {
            return NotificationKey(channel: channel, dataID: nil, action: action, version: "sha256:" + Hex.sha256(tree.canonical(tree.root)))
        }
        let version: String
        if action?.uppercased() == "DELETE" {
            version = ""
        } else if let stamp = tree.string(tree.member(inner, "lastUpdated")), !stamp.isEmpty {
            version = "lastUpdated:" + stamp
        } else {
            version = "sha256:" + Hex.sha256(tree.canonical(inner))
        }
        return NotificationKey(channel: channel, dataID: dataID, action: action, version: version)
    }

    /// An id as text: a string as decoded, a number as its integer (`42`, `42.0` and `"42"`
    /// are the same id; a fraction is truncated, as `JSONValue.idString` does for the Bayeux
    /// fields); a number beyond Int64 as written. Nil for booleans, null and containers.
    static func idString(_ tree: KeyJSON, _ node: KeyJSON.Node?) -> String? {
        if let text = tree.string(node) { return text }
        guard let text = tree.scalarText(node), text != "true", text != "false", text != "null" else { return nil }
        if let int = Int64(text) { return String(int) }
        if let double = Double(text), double.isFinite, double >= -9.2e18, double <= 9.2e18 {
            return String(Int64(double.rounded(.towardZero)))
        }
        return text
    }

    /// The JSON text of a value Foundation decoded, keys sorted: the stored data of an event
    /// whose bytes EdgeStore's strict reader refused (a duplicate member name, nesting deeper
    /// than 64), where the answer's own bytes cannot be sliced.
    static func canonicalJSON(_ value: Any) -> [UInt8] {
        // Valid for any value JSONSerialization produced; the fallback is unreachable in practice
        // but keeps this total (a crash here would take the downlink down).
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])) ?? Data()
        return [UInt8](data)
    }
}
