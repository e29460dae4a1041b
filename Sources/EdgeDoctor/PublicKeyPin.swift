import EdgeStore
import Foundation

/// The public-key pin of a certificate in libcurl's format: `sha256//` + base64 of the SHA-256
/// of the DER SubjectPublicKeyInfo (what `pinned_public_keys` lists and CURLOPT_PINNEDPUBLICKEY
/// compares). The same value as
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`.
public enum PublicKeyPin {
    /// The pin of the first certificate in `pem`, or nil when it is not a certificate this
    /// reader understands.
    public static func pin(pem: String) -> String? {
        guard let der = der(fromPEM: pem), let spki = subjectPublicKeyInfo(der: der) else { return nil }
        var digest: [UInt8] = []
        let hex = Array(Hex.sha256(spki).utf8)
        var index = 0
        while index + 1 < hex.count {
            digest.append(nibble(hex[index]) << 4 | nibble(hex[index + 1]))
            index += 2
        }
        return "sha256//" + Data(digest).base64EncodedString()
    }

    /// The bytes between the first BEGIN/END CERTIFICATE lines.
    static func der(fromPEM pem: String) -> [UInt8]? {
        guard let begin = pem.range(of: "-----BEGIN CERTIFICATE-----"),
              let end = pem.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<pem.endIndex) else { return nil }
        let body = pem[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(body)).map { Array($0) }
    }

    /// The complete SubjectPublicKeyInfo element (tag and length included) of a DER X.509
    /// certificate: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    /// serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }
    /// (RFC 5280 4.1).
    static func subjectPublicKeyInfo(der: [UInt8]) -> [UInt8]? {
        guard let certificate = element(der, at: 0), certificate.tag == 0x30,
              let tbs = element(der, at: certificate.contentStart), tbs.tag == 0x30 else { return nil }
        var offset = tbs.contentStart
        guard var field = element(der, at: offset) else { return nil }
        if field.tag == 0xA0 {  // [0] EXPLICIT version
            offset = field.end
            guard let next = element(der, at: offset) else { return nil }
            field = next
        }
        // serialNumber, signature, issuer, validity, subject: skip five elements.
        for _ in 0..<5 {
            offset = field.end
            guard let next = element(der, at: offset) else { return nil }
            field = next
        }
        guard field.tag == 0x30, field.end <= tbs.end else { return nil }
        return Array(der[offset..<field.end])
    }

    /// One DER element at `offset`: its tag, where its content starts and where it ends.
    private static func element(_ bytes: [UInt8], at offset: Int) -> (tag: UInt8, contentStart: Int, end: Int)? {
        guard offset + 2 <= bytes.count else { return nil }
        let tag = bytes[offset]
        let first = bytes[offset + 1]
        var length = 0
        var start = offset + 2
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7f)
            guard count >= 1, count <= 4, start + count <= bytes.count else { return nil }
            for byte in bytes[start..<(start + count)] { length = length << 8 | Int(byte) }
            start += count
        }
        guard start + length <= bytes.count else { return nil }
        return (tag, start, start + length)
    }

    private static func nibble(_ digit: UInt8) -> UInt8 {
        digit >= UInt8(ascii: "a") ? digit - UInt8(ascii: "a") + 10 : digit - UInt8(ascii: "0")
    }
}
