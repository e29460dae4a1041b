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
///   object's canonical JSON (keys sorted). Fields such as `status`, `count` or
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
        self.value = "[" + [channel, dataID ?? "", action ?? "", version].map(JSON.quoted).joined(separator: ",") + "]"
    }

    public var description: String { value }

    /// The key of one event's data (a value decoded by `JSONSerialization`) on `channel`.
    public static func make(channel: String, data: Any) -> NotificationKey {
        var inner: Any = data
        var action: String? = nil
        if let object = data as? [String: Any], let realtimeAction = object["realtimeAction"] as? String {
            action = realtimeAction
            if let wrapped = object["data"] {
                // The docs show the object both bare and as a one-element array.
                if let array = wrapped as? [Any], array.count == 1 { inner = array[0] } else { inner = wrapped }
            }
        }
        let dataID: String?
        if let object = inner as? [String: Any] {
            dataID = JSONValue.idString(object["id"])
        } else if action != nil, !(inner is [Any]), !(inner is [String: Any]) {
            // DELETE carries only the id.
            dataID = JSONValue.idString(inner)
        } else {
            dataID = nil
        }
        guard let dataID else {
            return NotificationKey(channel: channel, dataID: nil, action: action, version: "sha256:" + contentHash(data))
        }
        let version: String
        if action?.uppercased() == "DELETE" {
            version = ""
        } else if let object = inner as? [String: Any], let stamp = object["lastUpdated"] as? String, !stamp.isEmpty {
            version = "lastUpdated:" + stamp
        } else {
            version = "sha256:" + contentHash(inner)
        }
        return NotificationKey(channel: channel, dataID: dataID, action: action, version: version)
    }

    /// SHA-256 (hex) of the value's canonical JSON: keys sorted, no whitespace, slashes unescaped.
    static func contentHash(_ value: Any) -> String {
        Hex.sha256(canonicalJSON(value))
    }

    static func canonicalJSON(_ value: Any) -> [UInt8] {
        // Valid for any value JSONSerialization produced; the fallback is unreachable in practice
        // but keeps this total (a crash here would take the downlink down).
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])) ?? Data()
        return [UInt8](data)
    }
}
