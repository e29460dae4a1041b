extension Duration {
    /// Whole milliseconds, rounded up so that a tiny positive duration never becomes 0
    /// (which libcurl reads as "no timeout").
    var curlMilliseconds: Int {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(clamping: max(ms, 1))
    }

    /// Whole seconds, rounded up, at least 1.
    var curlSeconds: Int {
        let (seconds, attoseconds) = components
        return Int(clamping: max(seconds + (attoseconds > 0 ? 1 : 0), 1))
    }
}
