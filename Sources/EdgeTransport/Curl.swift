import CCurl

/// The one place libcurl return codes are checked, and the process-wide `curl_global_init`.
enum Curl {
    /// `curl_global_init` must run once per process before any other libcurl call, and is not
    /// thread-safe in every libcurl build (only since 7.84 with the "threadsafe" feature).
    /// A `static let` is initialized exactly once, under a lock (swift_once), on first use.
    private static let globalInitResult: UInt32 = curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue

    /// Runs `curl_global_init` on first call; later calls only return its result.
    static func initializeOnce() throws(TransportError) {
        let rc = globalInitResult
        if rc != CURLE_OK.rawValue {
            throw TransportError(
                invalidConfiguration: "curl_global_init failed with curl error \(rc); libcurl or its TLS library cannot start",
                curlCode: Int(rc))
        }
    }

    /// Every `curl_easy_setopt` and `curl_easy_getinfo` result passes through here.
    ///
    /// A failure is a programming or configuration error (an option this libcurl lacks, an
    /// invalid value, out of memory), never a network condition, so it names the option.
    static func check(_ rc: CURLcode, _ what: @autoclosure () -> String) throws(TransportError) {
        guard rc != CURLE_OK else { return }
        let text = curl_easy_strerror(rc).map { String(cString: $0) } ?? "unknown"
        throw TransportError(
            invalidConfiguration: "libcurl rejected \(what()) (curl error \(rc.rawValue): \(text))",
            curlCode: Int(rc.rawValue))
    }

    /// The `CURLOPT_*` name of an option, from libcurl's own option table.
    static func name(of option: CURLoption) -> String {
        guard let entry = curl_easy_option_by_id(option), let name = entry.pointee.name else {
            return "CURLOPT #\(option.rawValue)"
        }
        return "CURLOPT_" + String(cString: name)
    }

    /// The libcurl version string, e.g. "7.88.1".
    static var version: String {
        guard let info = ccurl_version_info(), let v = info.pointee.version else { return "unknown" }
        return String(cString: v)
    }
}
