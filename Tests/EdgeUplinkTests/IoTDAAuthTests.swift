import TestSupport
import EdgeUplink
import Foundation
import Testing

@Suite struct IoTDAAuthTests {
    /// Computed independently with Python:
    /// `python3 -c "import hmac,hashlib; print(hmac.new(b'2026112203', b'my-device-secret', hashlib.sha256).hexdigest())"`
    /// (key = the timestamp, message = the secret).
    static let pythonVector = "2b068a8ce64afcf71aafa8eead536afee0e4f2df8019705de6311431d5c83139"

    @Test func passwordMatchesAVectorComputedWithPython() {
        #expect(IoTDAAuth.password(secret: DeviceSecret("my-device-secret"), hourTimestamp: "2026112203") == Self.pythonVector)
    }

    @Test(arguments: [("2026112203", "my-device-secret"), ("2024010100", "s3cr3t with spaces & ünïcode"), ("1970010100", "")])
    func passwordMatchesOpenSSL(timestamp: String, secret: String) throws {
        let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let path = try #require(openssl, "openssl is needed for this vector")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["dgst", "-sha256", "-hmac", timestamp]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(secret.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        // "SHA2-256(stdin)= <hex>" (older: "(stdin)= <hex>")
        let printed = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let hex = try #require(printed.split(separator: " ").last.map(String.init))
        #expect(hex.count == 64)
        #expect(IoTDAAuth.password(secret: DeviceSecret(secret), hourTimestamp: timestamp) == hex)
    }

    @Test func hourTimestampIsTheUTCHour() {
        #expect(IoTDAAuth.hourTimestamp(milliseconds: 1_795_317_010_555) == "2026112203")  // 2026-11-22T03:10:10.555Z
        #expect(IoTDAAuth.hourTimestamp(milliseconds: 0) == "1970010100")
    }

    @Test func requestBodyHasTheFourFields() throws {
        let request = IoTDAAuth.request(deviceID: "d-001", secret: DeviceSecret("my-device-secret"), signType: .unchecked, now: 1_795_317_010_555)
        #expect(request.path == "/v5/device-auth")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        #expect(json["device_id"] as? String == "d-001")
        #expect(json["sign_type"] as? Int == 0)
        #expect(json["timestamp"] as? String == "2026112203")
        #expect(json["password"] as? String == Self.pythonVector)
        #expect(json.count == 4)
        let checked = IoTDAAuth.request(deviceID: "d-001", secret: DeviceSecret("x"), signType: .checked, now: 0)
        #expect((try JSONSerialization.jsonObject(with: Data(checked.body)) as? [String: Any])?["sign_type"] as? Int == 1)
    }

    @Test func theAnswerIsParsed() throws {
        let token = try IoTDAAuth.parseAnswer(Array(#"{"access_token":"abcdefghijklmnopqrstuvwxyz012345","expires_in":86399}"#.utf8))
        #expect(token.headerValue == "abcdefghijklmnopqrstuvwxyz012345")
        #expect(token.expiresIn == .seconds(86399))
        #expect(token.refreshAfter == .seconds(86399 - 300))
        for bad in [#"nope"#, #"{"expires_in":1}"#, #"{"access_token":"a\r\nX-Injected: 1","expires_in":1}"#,
                    #"{"access_token":"","expires_in":1}"#, #"{"access_token":"abc"}"#, #"{"access_token":"abc","expires_in":-5}"#,
                    #"{"access_token":"abc","expires_in":"60"}"#] {
            #expect(throws: IoTDAAuth.AnswerError.self) { try IoTDAAuth.parseAnswer(Array(bad.utf8)) }
        }
        do {
            _ = try IoTDAAuth.parseAnswer(Array(#"{"access_token":"tok\u0000en","expires_in":1}"#.utf8))
            Issue.record("accepted a control character")
        } catch {
            #expect(!"\(error)".contains("tok"))
        }
    }

    @Test func secretsNeverPrint() {
        let secret = DeviceSecret("hunter2-secret")
        let token = AccessToken("token-value-123", expiresIn: .seconds(60))
        let request = IoTDAAuth.request(deviceID: "d1", secret: secret, signType: .unchecked, now: 0)
        let password = IoTDAAuth.password(secret: secret, hourTimestamp: "1970010100")
        var dumped = ""
        dump(secret, to: &dumped)
        dump(token, to: &dumped)
        dump(request, to: &dumped)
        let texts = ["\(secret)", String(describing: secret), String(reflecting: secret), "\(token)", String(reflecting: token),
                     "\(request)", String(reflecting: request), dumped, "\([secret])", "\(Optional(token) as Any)"]
        for text in texts {
            #expect(!text.contains("hunter2"), "\(text)")
            #expect(!text.contains("token-value"), "\(text)")
            #expect(!text.contains(password), "\(text)")
        }
        #expect("\(request)".contains("d1"))
    }

    @Test func platformHeadersAndPaths() {
        let token = AccessToken("tok", expiresIn: .seconds(60))
        let iotda = Platform.iotda.headers(accessToken: token)
        #expect(iotda.map(\.name) == ["Content-Type", "access_token"])
        #expect(iotda.map(\.value) == ["application/json", "tok"])
        #expect(Platform.cumulocity.headers(accessToken: nil).map(\.name) == ["Content-Type", "Accept"])
        #expect(Platform.childPropertiesReportPath(gateway: "gw-1") == "/v5/devices/gw-1/sys/gateway/sub-devices/properties/report")
        #expect(Platform.messagesUpPath(device: "a/b c") == "/v5/devices/a%2Fb%20c/sys/messages/up")
        #expect(Platform(for: .measurement) == .cumulocity && Platform(for: .childProperty) == .iotda)
    }
}
