import Crypto

/// Lowercase hex, and SHA-256 in hex (audit hashes, request body digests).
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        // Bytes, then one String: appending Characters one by one cost more than the SHA-256
        // itself for each dedupe key (issue 12).
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func sha256(_ bytes: [UInt8]) -> String { encode(SHA256.hash(data: bytes)) }
}

extension Hex {
    /// SHA-256 of `bytes`, the 32 raw bytes (for a caller that chains hashes without linking
    /// swift-crypto itself: the drain benchmark's raw baseline writes audit rows).
    public static func sha256Digest(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
