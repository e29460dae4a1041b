/// A manual monotonic instant: tests move time by hand, nothing sleeps.
public struct TestInstant: InstantProtocol, CustomStringConvertible, Sendable {
    public var offset: Duration

    public init(offset: Duration) { self.offset = offset }

    public static let zero = TestInstant(offset: .zero)

    public func advanced(by duration: Duration) -> TestInstant { TestInstant(offset: offset + duration) }
    public func duration(to other: TestInstant) -> Duration { other.offset - offset }
    public static func < (lhs: TestInstant, rhs: TestInstant) -> Bool { lhs.offset < rhs.offset }

    public var description: String { "t+\(offset)" }
}

/// Deterministic random numbers (SplitMix64), so backoff jitter is reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Always the same draw: 0 gives the shortest jitter, UInt64.max the longest.
public struct FixedRandom: RandomNumberGenerator, Sendable {
    public let value: UInt64
    public init(value: UInt64) { self.value = value }
    public mutating func next() -> UInt64 { value }
}
