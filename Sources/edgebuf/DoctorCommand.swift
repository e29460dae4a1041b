import ArgumentParser
import EdgeBuffer
import EdgeDoctor
import EdgeDownlink
import EdgeIngest
import EdgeUplink
import Foundation

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the network path to the uplink and downlink endpoints; exit 69 when something blocks syncing.",
        discussion: """
            For each endpoint ([uplink] url, [downlink] url, or every --url): name resolution, TCP \
            connect, the proxy and its CONNECT tunnel, TLS (version, cipher, chain and issuer, \
            validity, host name, pin), the credentials (IoTDA device-auth and one use of the token \
            with an empty report, a Cumulocity GET /user/currentUser, or a Bayeux handshake) and the \
            clock against the server's Date header. Each line says ok, warn, FAIL or skip, with the \
            evidence and, for warnings and failures, the likely cause and the fix. --idle-probe also \
            measures how long an idle connection survives (minutes; progress on stderr) and \
            recommends [downlink] network_idle_limit. A --url that is not configured gets no \
            credentials.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("url"), help: ArgumentHelp("Check this URL instead of the configured endpoints (repeatable).", valueName: "url"))
    var urls: [String] = []

    @Flag(help: "Also hold a connection idle for growing periods (15 s, 30 s, 1 min, ... up to --max-idle) to find the network's idle timeout.")
    var idleProbe = false

    @Option(help: ArgumentHelp("The longest idle period --idle-probe tries: seconds or e.g. 2s, 90s, 15m.", valueName: "duration"))
    var maxIdle: String = "15m"

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func validate() throws {
        guard let seconds = Self.parseDuration(maxIdle), seconds >= 1, seconds <= 7200 else {
            throw ValidationError("--max-idle: \"\(maxIdle)\" is not a duration between 1 s and 2 h (e.g. 2s, 90s, 15m)")
        }
    }

    func run() async throws {
        let endpoints: [DoctorEndpoint]
        let doctor: Doctor
        do {
            let logger = try global.bootstrapLogging()
            endpoints = try self.endpoints()
            let seconds = Self.parseDuration(maxIdle) ?? 900
            let options = DoctorOptions(idleProbe: idleProbe, maxIdle: .milliseconds(Int64(seconds * 1000)))
            doctor = Doctor(endpoints: endpoints, options: options, logger: logger) { line in
                FileOutput.standardError.write("doctor: \(line)\n")
            }
        } catch {
            throw fail(error)
        }
        let report = await doctor.run()
        print(json ? report.json : report.text)
        if report.blocksSyncing {
            throw ExitStatus.unavailable.code
        }
    }

    /// The configured endpoints, or those of --url. Every section is read, so a typo anywhere
    /// in the file is named here as it would be by `run`.
    private func endpoints() throws -> [DoctorEndpoint] {
        let document = try global.document()
        _ = try OutboxConfiguration(document: document)
        let uplink = try UplinkConfiguration(document: document)
        let downlink = try DownlinkSettings(document: document)
        _ = try IngestConfiguration(document: document)
        _ = try document.section("log")
        try document.finish()
        let configured = try DoctorEndpoint.configured(uplink: uplink, downlink: downlink)
        if urls.isEmpty {
            guard !configured.isEmpty else {
                throw CLIFailure(status: .configError, message: "nothing to check: give --config with an [uplink] and/or [downlink] url, or --url https://host")
            }
            return configured
        }
        do {
            return try urls.map { try DoctorEndpoint.forURL($0, configured: configured) }
        } catch let error as DoctorError {
            throw CLIFailure(status: .usage, message: "--url: \(error)")
        }
    }

    /// Seconds from `90`, `2.5`, `500ms`, `30s`, `15m`, `2h`.
    static func parseDuration(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        for (unit, factor) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] where trimmed.hasSuffix(unit) {
            return Double(trimmed.dropLast(unit.count)).flatMap { $0 >= 0 ? $0 * factor : nil }
        }
        return Double(trimmed).flatMap { $0 >= 0 ? $0 : nil }
    }
}
