import CCurl
import EdgeUplink
import Foundation

/// The physical limit's HTTP side: one libcurl easy handle, reused for every POST so the
/// connection stays open, with nothing but what IoTDA needs (the access_token header) and an
/// empty `Expect:` (libcurl would otherwise wait for a 100 Continue on large bodies).
///
/// Owns the handle and the header list and frees them in `deinit`. Not Sendable: create and
/// use it on one thread (`curl_easy_perform` blocks).
final class RawPoster {
    private let handle: UnsafeMutableRawPointer
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let response = ResponseBuffer()
    let baseURL: String

    init(baseURL: String) throws {
        _ = Self.globalInit
        guard let handle = curl_easy_init() else { throw BenchError("curl_easy_init returned NULL") }
        self.handle = handle
        self.baseURL = baseURL
        try check(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "CURLOPT_NOSIGNAL")
        try check(ccurl_setopt_string(handle, CURLOPT_PROXY, ""), "CURLOPT_PROXY")  // never an env proxy
        try check(ccurl_setopt_long(handle, CURLOPT_POST, 1), "CURLOPT_POST")
        try check(ccurl_setopt_write_function(handle, rawPosterWrite), "CURLOPT_WRITEFUNCTION")
        try check(ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(response).toOpaque()), "CURLOPT_WRITEDATA")
        try setHeaders(["Content-Type: application/json", "Expect:"])
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headers)
    }

    /// `curl_global_init`, once per process, before the first handle (EdgeTransport does the
    /// same for its own handles; since 7.84 concurrent calls are safe).
    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    /// The one check for every curl call here.
    private func check(_ rc: CURLcode, _ what: String) throws {
        guard rc != CURLE_OK else { return }
        throw BenchError("\(what) failed: curl error \(rc.rawValue) (\(String(cString: curl_easy_strerror(rc))))")
    }

    private func setHeaders(_ lines: [String]) throws {
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines {
            guard let extended = curl_slist_append(list, line) else { throw BenchError("curl_slist_append: out of memory") }
            list = extended
        }
        try check(ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, list), "CURLOPT_HTTPHEADER")
        curl_slist_free_all(headers)
        headers = list
    }

    /// `POST /v5/device-auth` for `device`; from then on every POST carries its token.
    func authenticate(device: String, secret: DeviceSecret) throws {
        let auth = IoTDAAuth.request(deviceID: device, secret: secret, signType: .unchecked, now: Int64(Date().timeIntervalSince1970 * 1000))
        try setURL(baseURL + auth.path)
        let status = try post(auth.body)
        guard status == 200 else { throw BenchError("device-auth answered HTTP \(status)") }
        let token = try IoTDAAuth.parseAnswer(response.bytes)
        try setHeaders(["Content-Type: application/json", "\(Platform.accessTokenHeader): \(token.headerValue)", "Expect:"])
    }

    func setURL(_ url: String) throws {
        try check(ccurl_setopt_string(handle, CURLOPT_URL, url), "CURLOPT_URL")
    }

    /// POSTs `body` (not copied: it only has to live until this returns); returns the status.
    @discardableResult
    func post(_ body: [UInt8]) throws -> Int {
        response.bytes.removeAll(keepingCapacity: true)
        try check(ccurl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)), "CURLOPT_POSTFIELDSIZE_LARGE")
        let rc = try withExtendedLifetime(response) {
            try body.withUnsafeBufferPointer { buffer -> CURLcode in
                try check(ccurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress)), "CURLOPT_POSTFIELDS")
                return curl_easy_perform(handle)
            }
        }
        try check(ccurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, nil), "CURLOPT_POSTFIELDS")
        try check(rc, "POST")
        var status = 0
        try check(ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status), "CURLINFO_RESPONSE_CODE")
        return status
    }

    /// Like `post`, but anything other than 2xx is an error.
    func postExpectingSuccess(_ body: [UInt8]) throws {
        let status = try post(body)
        guard (200..<300).contains(status) else { throw BenchError("POST answered HTTP \(status)") }
    }
}

/// The response body of the last POST (the device-auth answer; reports have none).
final class ResponseBuffer {
    var bytes: [UInt8] = []
}

/// CURLOPT_WRITEFUNCTION: appends to the `ResponseBuffer` passed as WRITEDATA.
func rawPosterWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
    guard let data, let userdata else { return 0 }
    let buffer = Unmanaged<ResponseBuffer>.fromOpaque(userdata).takeUnretainedValue()
    buffer.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}
