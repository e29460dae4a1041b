/// The uplink's retry and pacing settings (the engine maps the `[uplink]` config section here).
public struct SyncConfiguration: Sendable, Equatable {
    /// Backoff delays: initial 1 s, maximum 5 min, unauthorized 15 min.
    public var backoff: Backoff.Policy
    /// Request and byte rates; unlimited by default.
    public var pacing: PacingConfiguration

    public init(backoff: Backoff.Policy = Backoff.Policy(), pacing: PacingConfiguration = PacingConfiguration()) {
        self.backoff = backoff
        self.pacing = pacing
    }
}
