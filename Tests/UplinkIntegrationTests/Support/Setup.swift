import Foundation
import TestSupport
import Testing

/// Where edgebuf's requests go in the contract suite.
enum Front: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// The simulator over plain HTTP.
    case simulatorHTTP
    /// The simulator over HTTPS with its own CA.
    case simulatorHTTPS
    /// nginx (TLS 1.2 only, client_max_body_size 1m) in front of the HTTP simulator.
    case nginx

    var testDescription: String { rawValue }
}

/// A simulator, and nginx in front of it for `.nginx`.
final class Setup: @unchecked Sendable {
    let simulator: Simulator
    let nginx: Nginx?

    init(_ front: Front) throws {
        switch front {
        case .simulatorHTTP:
            simulator = try Simulator()
            nginx = nil
        case .simulatorHTTPS:
            simulator = try Simulator(https: true)
            nginx = nil
        case .nginx:
            simulator = try Simulator()
            nginx = try Nginx(upstreamPort: simulator.port)
        }
    }

    /// The URL and CA edgebuf is configured with.
    func uplink(platform: String = "iotda", extra: [String: String] = [:]) -> Workspace.Uplink {
        if let nginx { return Workspace.Uplink(platform: platform, url: nginx.url, caFile: nginx.caFile, extra: extra) }
        return Workspace.Uplink(platform: platform, simulator: simulator, extra: extra)
    }
}

/// A stored outbox record (from `outbox list --json`) matched against what the simulator
/// accepted: every field the platform sees must be the stored one, byte for byte after
/// JSON decoding.
func expectSame(accepted: JSONDict, stored: JSONDict, sourceLocation: SourceLocation = #_sourceLocation) {
    let payload = stored.object("payload") ?? [:]
    let seq = seqOf(accepted) ?? -1
    switch stored.string("kind") {
    case "property":
        #expect(accepted.string("kind") == "property", "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("device_id") == stored.string("target"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("service_id") == payload.string("service_id"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(jsonEqual(accepted["properties"], payload["properties"]), "seq \(seq): properties differ", sourceLocation: sourceLocation)
        #expect(accepted.string("event_time") == payload.string("event_time"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("event_time") == stored.string("event_time"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.bool("event_time_replaced") == false, "seq \(seq): the platform replaced event_time", sourceLocation: sourceLocation)
    case "child_property":
        #expect(accepted.string("kind") == "child_property", "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("gateway_id") == stored.string("target"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("device_id") == stored.string("child"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("service_id") == payload.string("service_id"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(jsonEqual(accepted["properties"], payload["properties"]), "seq \(seq): properties differ", sourceLocation: sourceLocation)
        #expect(accepted.string("event_time") == payload.string("event_time"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.bool("event_time_replaced") == false, "seq \(seq): the platform replaced event_time", sourceLocation: sourceLocation)
    case "message":
        #expect(accepted.string("kind") == "message", "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("device_id") == stored.string("target"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("name") == payload.string("name"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("id") == payload.string("id"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(jsonEqual(accepted["content"], payload["content"]), "seq \(seq): content differs", sourceLocation: sourceLocation)
    case "measurement":
        #expect(accepted.string("kind") == "measurement", "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("source") == payload.object("source")?.string("id"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("type") == payload.string("type"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("time") == payload.string("time"), "seq \(seq)", sourceLocation: sourceLocation)
        #expect(accepted.string("time") == stored.string("event_time"), "seq \(seq)", sourceLocation: sourceLocation)
        var fragments = payload
        for key in ["source", "type", "time"] { fragments.removeValue(forKey: key) }
        #expect(jsonEqual(accepted["fragments"], fragments), "seq \(seq): fragments differ", sourceLocation: sourceLocation)
    default:
        Issue.record("unknown stored kind \(stored.string("kind") ?? "nil")", sourceLocation: sourceLocation)
    }
}

/// The stored records by seq (payload parsed), from `outbox list --json`.
func storedBySeq(_ outbox: [JSONDict]) -> [Int: JSONDict] {
    var out: [Int: JSONDict] = [:]
    for record in outbox {
        guard let payload = record.object("payload") else { continue }
        let probe: JSONDict
        switch record.string("kind") {
        case "message": probe = ["content": payload["content"] ?? NSNull()]
        case "measurement":
            var fragments = payload
            for key in ["source", "type", "time"] { fragments.removeValue(forKey: key) }
            probe = ["fragments": fragments]
        default: probe = ["properties": payload["properties"] ?? NSNull()]
        }
        if let seq = seqOf(probe) { out[seq] = record }
    }
    return out
}
