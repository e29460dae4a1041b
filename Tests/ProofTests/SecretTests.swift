import Foundation
import TestSupport
import Testing

/// Distinctive credentials (an IoTDA device secret and a Cumulocity password, given inline and
/// through `*_file`, plus wrong ones that the platform refuses) go through every command at
/// `--log-level trace`, including refused logins, retries and dead letters. None of them, nor
/// their Base64, their Basic-auth form or the IoTDA HMAC password derived from them, appears
/// in any output, the audit or the bytes of the database and its -wal and -shm. Every file
/// and directory edgebuf creates is owner-only, even under `umask 000`.
@Suite struct SecretTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    static let deviceSecret = "Zq8wX4-dev1ce-S3cret-7Hn2"
    static let wrongDeviceSecret = "Hj5mN1-wr0ng-S3cret-9Pq4"
    static let password = "Kv7rT2-c8y-P4ssw0rd-3Lm8"
    static let wrongPassword = "Ub3eY9-wr0ng-P4ss-6Wd1"
    static let tenantUser = "t9/bob"

    /// Every form a secret could leak in.
    static func needles() throws -> [(name: String, text: String)] {
        var needles: [(String, String)] = []
        for (name, secret) in [("device secret", deviceSecret), ("wrong device secret", wrongDeviceSecret),
                               ("password", password), ("wrong password", wrongPassword)] {
            needles.append((name, secret))
            needles.append(("\(name), Base64", Data(secret.utf8).base64EncodedString()))
        }
        for (name, secret) in [("password", password), ("wrong password", wrongPassword)] {
            let basic = Data("\(tenantUser):\(secret)".utf8).base64EncodedString()
            needles.append(("Basic auth with the \(name)", basic))
            // Base64 of a longer string shifts with its alignment: also look for a long inner piece.
            needles.append(("Basic auth with the \(name), inner part", String(basic.dropFirst(4).dropLast(4))))
        }
        // The IoTDA password: hex HMAC-SHA256 keyed with the hour (YYYYMMDDHH), for the hours
        // around now (computed with Python's hmac, so the test needs no crypto library).
        let script = """
            import hmac, hashlib, datetime, sys
            now = datetime.datetime.now(datetime.timezone.utc)
            for secret in sys.argv[1:]:
                for h in range(-3, 4):
                    stamp = (now + datetime.timedelta(hours=h)).strftime("%Y%m%d%H")
                    print(hmac.new(stamp.encode(), secret.encode(), hashlib.sha256).hexdigest())
            """
        let result = try runBounded(Simulator.python, ["-c", script, deviceSecret, wrongDeviceSecret], timeout: .seconds(30))
        let digests = result.stdoutText.split(separator: "\n").map(String.init)
        guard digests.count == 14 else { throw TestFailure("HMAC digests: \(result.stderrText)") }
        for digest in digests { needles.append(("IoTDA HMAC password", digest)) }
        return needles
    }

    @Test func noSecretReachesAnOutputTheAuditOrTheDatabaseAndFilesAreOwnerOnly() throws {
        let simulator = try Simulator(extra: ["--device", "gw-s=\(Self.deviceSecret)", "--cumulocity-user", "\(Self.tenantUser):\(Self.password)"])
        let home = TemporaryDirectory("edgebuf-secrets")
        let state = home.file("state/deep")  // created by edgebuf
        let db = state + "/edgebuf.db"
        let secretFile = home.file("device.secret"), passwordFile = home.file("c8y.password")
        try (Self.deviceSecret + "\n").write(toFile: secretFile, atomically: true, encoding: .utf8)
        try (Self.password + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)

        func config(_ name: String, _ keys: [String: String]) throws -> String {
            var all = ["url": Device.quoted(simulator.url), "allow_plain_http": "true", "backoff_initial": "\"50ms\"",
                       "backoff_max": "\"300ms\"", "unauthorized_backoff": "\"300ms\"", "request_timeout": "10"]
            for (key, value) in keys { all[key] = value }
            let path = home.file(name)
            try ("[uplink]\n" + all.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let iotdaInline = try config("iotda-inline.toml", ["platform": "\"iotda\"", "device_id": "\"gw-s\"", "secret": Device.quoted(Self.deviceSecret)])
        let iotdaFile = try config("iotda-file.toml", ["platform": "\"iotda\"", "device_id": "\"gw-s\"", "secret_file": Device.quoted(secretFile)])
        let iotdaWrong = try config("iotda-wrong.toml", ["platform": "\"iotda\"", "device_id": "\"gw-s\"", "secret": Device.quoted(Self.wrongDeviceSecret)])
        let c8yInline = try config("c8y-inline.toml", ["platform": "\"cumulocity\"", "username": Device.quoted(Self.tenantUser), "password": Device.quoted(Self.password)])
        let c8yFile = try config("c8y-file.toml", ["platform": "\"cumulocity\"", "username": Device.quoted(Self.tenantUser), "password_file": Device.quoted(passwordFile)])
        let c8yWrong = try config("c8y-wrong.toml", ["platform": "\"cumulocity\"", "username": Device.quoted(Self.tenantUser), "password": Device.quoted(Self.wrongPassword)])

        var outputs: [(String, String)] = []
        func eb(_ config: String, _ arguments: [String], stdin: String = "", expect status: Int32? = 0, umask: String? = nil) throws {
            let full = ["--db", db, "--config", config, "--log-level", "trace"] + arguments
            let result: BoundedResult
            if let umask {
                result = try runBounded("/bin/sh", ["-c", "umask \(umask); exec \"$0\" \"$@\"", edgebufBinary] + full,
                                        stdin: Array(stdin.utf8), timeout: .seconds(60))
            } else {
                result = try edgebufBounded(full, stdin: Array(stdin.utf8), timeout: .seconds(60))
            }
            let label = "\((config as NSString).lastPathComponent) \(arguments.prefix(3).joined(separator: " "))"
            outputs.append(("\(label) stdout", result.stdoutText))
            outputs.append(("\(label) stderr", result.stderrText))
            if let status {
                #expect(result.exitCode == status, "\(label): \(result.summary): \(result.signal == nil ? String(result.stderrText.suffix(1500)) : String(result.stderrText.prefix(4000)))")
            }
        }

        // Created under umask 000: modes must come from edgebuf, not from the umask.
        try eb(iotdaInline, ["init"], umask: "000")
        try eb(iotdaInline, ["enqueue", "property", "--device", "gw-s", "--service", "S", "--properties", #"{"seq":1}"#], umask: "000")
        try eb(iotdaInline, ["enqueue", "message", "--device", "gw-s", "--name", "n", "--content", #"{"seq":2}"#])
        try eb(iotdaInline, ["enqueue", "child-property", "--gateway", "gw-s", "--device", "c1", "--service", "S", "--properties", #"{"seq":3}"#])
        try eb(iotdaInline, ["enqueue", "measurement", "--source", "4711", "--type", "c8y_T", "--fragments", #"{"c8y_Seq":{"n":{"value":4}}}"#])
        let lines = (5...30).map { Records.property($0, device: "gw-s") } + (31...40).map { Records.measurement($0) }
            + [jsonText(["kind": "property", "device_id": "gw-s", "service_id": "S", "properties": ["seq": 41, "poison": true]] as JSONDict)]
        try eb(iotdaInline, ["enqueue", "--jsonl", "--ack"], stdin: lines.joined(separator: "\n") + "\n")

        // Refused credentials: both platforms say 401, edgebuf reports it.
        try eb(iotdaWrong, ["flush", "--timeout", "3", "--json"], expect: 69)
        try eb(c8yWrong, ["flush", "--timeout", "3", "--json"], expect: 69)
        try eb(iotdaWrong, ["status", "--json"])

        // The daemon with the right secret, through a 503, a 401 on a data request, a
        // rejected token and a poisoned record (dead-lettered).
        try simulator.fault(["count": 1, "status": 503, "path": simulatorDataPaths],
                            ["count": 1, "status": 401, "error_code": "IOTDA.000002", "path": simulatorDataPaths],
                            ["count": 1, "status": 403, "error_code": "IOTDA.000004", "path": simulatorDataPaths])
        let daemonDirectory = TemporaryDirectory("edgebuf-secrets-run")
        let daemon = try ChildProcess(edgebufBinary, ["--db", db, "--config", iotdaInline, "--log-level", "trace", "run"],
                                      stdout: daemonDirectory.file("out"), stderr: daemonDirectory.file("err"))
        defer { daemon.kill9() }
        let delivered = poll(timeout: .seconds(30)) {
            Set(((try? simulator.accepted()) ?? []).compactMap(Records.seq)).isSuperset(of: [1, 2, 3] + Array(5...30))
        }
        #expect(delivered, "the daemon delivered the IoTDA records: \(daemon.stderrText.suffix(1500))")
        // While the daemon runs, its -wal and -shm exist: their bytes and modes count too.
        var rawFiles: [(String, [UInt8])] = []
        for suffix in ["", "-wal", "-shm"] {
            if let bytes = fileBytes(db + suffix) { rawFiles.append(("database\(suffix) while running", bytes)) }
            #expect(fileMode(db + suffix) == 0o600, "\(db + suffix) is \(String(fileMode(db + suffix) ?? -1, radix: 8))")
        }
        daemon.send(SIGTERM)
        #expect(daemon.wait(timeout: .seconds(10)) == 0, "run: \(daemon.stderrText.suffix(1500))")
        outputs.append(("run stdout", daemon.stdoutText))
        outputs.append(("run stderr", daemon.stderrText))

        try eb(iotdaFile, ["flush", "--timeout", "20", "--json"])
        try eb(c8yFile, ["flush", "--timeout", "20", "--json"])
        try eb(c8yInline, ["flush", "--timeout", "20", "--json"])
        for config in [iotdaInline, c8yFile] {
            try eb(config, ["status"])
            try eb(config, ["status", "--json"])
            try eb(config, ["audit", "list", "--json"])
            try eb(config, ["audit", "list"])
            try eb(config, ["audit", "verify", "--json"])
            try eb(config, ["dead-letters", "list"])
            try eb(config, ["dead-letters", "list", "--json"])
            try eb(config, ["outbox", "list"])
            try eb(config, ["outbox", "list", "--json"])
        }
        try eb(iotdaWrong, ["dead-letters", "retry", "--all"])
        try eb(iotdaWrong, ["flush", "--timeout", "3"], expect: 69)

        // The premise: the paths that produce messages were taken.
        let everything = outputs.map(\.1).joined(separator: "\n")
        #expect(everything.contains("401") || everything.contains("unauthorized"), "a refused login was reported")
        #expect(everything.contains("IOTDA.000006"), "a dead letter was reported with the platform's code")
        #expect(everything.count > 10_000, "trace logging produced output (\(everything.count) characters)")
        let stats = try simulator.stats()
        #expect((stats.object("auths")?.int("failed") ?? 0) >= 1, "the simulator refused a device-auth: \(stats)")

        for suffix in ["", "-wal", "-shm"] {
            if let bytes = fileBytes(db + suffix) { rawFiles.append(("database\(suffix) at the end", bytes)) }
        }
        let needles = try Self.needles()
        // The search itself works: it finds the secret where it must be, in the configuration.
        #expect(Self.contains(fileBytes(iotdaInline) ?? [], Array(Self.deviceSecret.utf8)), "the byte search finds a secret")
        for (name, text) in outputs {
            for needle in needles where text.contains(needle.text) {
                Issue.record("the \(needle.name) appears in \(name)")
            }
        }
        for (name, bytes) in rawFiles {
            for needle in needles where Self.contains(bytes, Array(needle.text.utf8)) {
                Issue.record("the \(needle.name) appears in the raw bytes of the \(name)")
            }
        }

        // Owner-only: every directory edgebuf made is 0700, every file in them 0600.
        for directory in [home.file("state"), state] {
            #expect(fileMode(directory) == 0o700, "\(directory) is \(String(fileMode(directory) ?? -1, radix: 8))")
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: state) {
            let path = state + "/" + name
            #expect(fileMode(path) == 0o600, "\(path) is \(String(fileMode(path) ?? -1, radix: 8))")
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var index = 0
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first && haystack[index..<index + needle.count].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}
