import TestSupport
import Testing

/// The uplink against the platform simulator and real peers (nginx, mitmproxy), through the
/// built `edgebuf` binary. Serialized: several tests measure time (Retry-After, wake-up
/// latency, kill -9 during a drain) and must not compete with each other for two cores.
@Suite(.serialized) struct Uplink {}
