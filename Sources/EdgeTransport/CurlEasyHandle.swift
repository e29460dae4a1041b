import CCurl
import Foundation

/// Owns one libcurl easy handle and its error buffer; frees both in `deinit`.
///
/// Not Sendable: a `CURL*` must be used by one thread at a time. Typed setters and getters
/// wrap the variadic C calls (see `shim.h`) and route every result through `Curl.check`.
final class CurlEasyHandle {
    let raw: UnsafeMutableRawPointer
    /// CURLOPT_ERRORBUFFER: libcurl writes a human-readable reason here on failure. It must
    /// stay allocated as long as the handle, hence owned here.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws(TransportError) {
        try Curl.initializeOnce()
        guard let handle = curl_easy_init() else {
            throw TransportError(invalidConfiguration: "curl_easy_init returned NULL (out of memory?)", curlCode: nil)
        }
        raw = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    // MARK: setopt

    func set(_ option: CURLoption, _ value: Int) throws(TransportError) {
        try Curl.check(ccurl_setopt_long(raw, option, value), Curl.name(of: option))
    }

    func set(_ option: CURLoption, _ value: Bool) throws(TransportError) {
        try set(option, value ? 1 : 0)
    }

    func set(_ option: CURLoption, offT value: Int64) throws(TransportError) {
        try Curl.check(ccurl_setopt_off_t(raw, option, curl_off_t(value)), Curl.name(of: option))
    }

    /// libcurl copies string options (all but CURLOPT_POSTFIELDS), so a temporary C string is fine.
    func set(_ option: CURLoption, _ value: String?) throws(TransportError) {
        let rc: CURLcode
        if let value {
            rc = value.withCString { ccurl_setopt_string(raw, option, $0) }
        } else {
            rc = ccurl_setopt_string(raw, option, nil)
        }
        try Curl.check(rc, Curl.name(of: option))
    }

    func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) throws(TransportError) {
        try Curl.check(ccurl_setopt_pointer(raw, option, pointer), Curl.name(of: option))
    }

    func set(_ option: CURLoption, slist: UnsafeMutablePointer<curl_slist>?) throws(TransportError) {
        try Curl.check(ccurl_setopt_slist(raw, option, slist), Curl.name(of: option))
    }

    func setWriteFunction(_ callback: curl_write_callback) throws(TransportError) {
        try Curl.check(ccurl_setopt_write_function(raw, callback), "CURLOPT_WRITEFUNCTION")
    }

    func setHeaderFunction(_ callback: curl_write_callback) throws(TransportError) {
        try Curl.check(ccurl_setopt_header_function(raw, callback), "CURLOPT_HEADERFUNCTION")
    }

    func setReadFunction(_ callback: curl_read_callback) throws(TransportError) {
        try Curl.check(ccurl_setopt_read_function(raw, callback), "CURLOPT_READFUNCTION")
    }

    func setSeekFunction(_ callback: curl_seek_callback) throws(TransportError) {
        try Curl.check(ccurl_setopt_seek_function(raw, callback), "CURLOPT_SEEKFUNCTION")
    }

    func setXferInfoFunction(_ callback: curl_xferinfo_callback) throws(TransportError) {
        try Curl.check(ccurl_setopt_xferinfo_function(raw, callback), "CURLOPT_XFERINFOFUNCTION")
    }

    // MARK: perform

    /// Runs the transfer (blocking) and returns libcurl's result code.
    func perform() -> CURLcode {
        errorBuffer[0] = 0
        return curl_easy_perform(raw)
    }

    /// Runs the transfer in `multi` (blocking), sleeping between socket events: see
    /// `CurlMultiHandle`.
    func perform(in multi: CurlMultiHandle, cancellation: CancellationFlag) -> CURLcode {
        errorBuffer[0] = 0
        return multi.perform(self, cancellation: cancellation)
    }

    /// What libcurl wrote into CURLOPT_ERRORBUFFER during the last perform, if anything.
    var errorMessage: String? {
        let text = String(cString: errorBuffer).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    // MARK: getinfo

    func long(_ info: CURLINFO, _ name: String) throws(TransportError) -> Int {
        var value = 0
        try Curl.check(ccurl_getinfo_long(raw, info, &value), name)
        return value
    }

    func offT(_ info: CURLINFO, _ name: String) throws(TransportError) -> Int64 {
        var value: curl_off_t = 0
        try Curl.check(ccurl_getinfo_off_t(raw, info, &value), name)
        return Int64(value)
    }

    func string(_ info: CURLINFO, _ name: String) throws(TransportError) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        try Curl.check(ccurl_getinfo_string(raw, info, &value), name)
        return value.map { String(cString: $0) }
    }

    /// CURLINFO_CERTINFO: one dictionary per certificate of the chain the server presented
    /// (leaf first), keyed like "Subject", "Issuer", "Start date", "Expire date".
    /// Needs CURLOPT_CERTINFO=1 before the transfer.
    func certificateChain() throws(TransportError) -> [[String: String]] {
        var info: UnsafeMutablePointer<curl_certinfo>?
        try Curl.check(ccurl_getinfo_certinfo(raw, &info), "CURLINFO_CERTINFO")
        guard let info, let lists = info.pointee.certinfo else { return [] }
        var chain: [[String: String]] = []
        for index in 0..<Int(info.pointee.num_of_certs) {
            var fields: [String: String] = [:]
            var node = lists[index]
            while let current = node {
                if let data = current.pointee.data {
                    let line = String(cString: data)
                    if let colon = line.firstIndex(of: ":") {
                        let key = String(line[..<colon])
                        if fields[key] == nil { fields[key] = String(line[line.index(after: colon)...]) }
                    }
                }
                node = current.pointee.next
            }
            chain.append(fields)
        }
        return chain
    }
}
