/// One event received on a subscribed channel, ready for the inbox.
///
/// The engine writes it with the local receive time (wall clock, taken when it commits the
/// batch) and inserts it idempotently on `key`.
public struct InboxNotification: Sendable, Equatable {
    /// The channel it arrived on, e.g. `/operations/12345`.
    public var channel: String
    /// The event's data as JSON text: the Bayeux `data` value (a one-element array unwrapped to
    /// its object), sliced from the answer's own bytes with whitespace outside strings removed.
    /// Numbers keep every digit and strings their escapes (no round trip through Double).
    public var data: [UInt8]
    /// The idempotency key (see `NotificationKey`).
    public var key: NotificationKey
    /// Cumulocity's `realtimeAction` (`CREATE`, `UPDATE`, `DELETE`), when present.
    public var realtimeAction: String?
    /// The Bayeux message id: unique only within one session, for diagnostics; never a key.
    public var messageID: String?

    public init(channel: String, data: [UInt8], key: NotificationKey, realtimeAction: String? = nil, messageID: String? = nil) {
        self.channel = channel
        self.data = data
        self.key = key
        self.realtimeAction = realtimeAction
        self.messageID = messageID
    }
}
