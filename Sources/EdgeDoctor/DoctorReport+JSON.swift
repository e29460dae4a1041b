import EdgeStore

extension DoctorReport {
    /// One JSON object for machines:
    /// `{"result", "blocks_syncing", "failures", "warnings", "libcurl", "endpoints": [{"role",
    /// "kind", "url", "proxy", "result", "checks": [{"check", "verdict", "summary", "evidence",
    /// "cause", "fix", "details": {...}}]}]}`.
    public var json: String {
        var out = JSONObject()
        out.add("result", verdict.rawValue)
        out.add("blocks_syncing", blocksSyncing)
        out.add("failures", failures)
        out.add("warnings", warnings)
        out.add("libcurl", libcurlVersion)
        out.add("endpoints", rawJSON: Self.array(endpoints.map(Self.endpoint)))
        return out.json
    }

    private static func endpoint(_ endpoint: EndpointReport) -> [UInt8] {
        var out = JSONObject()
        out.add("role", endpoint.role.rawValue)
        out.add("kind", endpoint.kind.rawValue)
        out.add("url", endpoint.url)
        out.add("proxy", endpoint.proxy)
        out.add("result", endpoint.verdict.rawValue)
        out.add("checks", rawJSON: array(endpoint.checks.map(check)))
        return Array(out.json.utf8)
    }

    private static func check(_ result: CheckResult) -> [UInt8] {
        var out = JSONObject()
        out.add("check", result.check.rawValue)
        out.add("verdict", result.verdict.rawValue)
        out.add("summary", result.summary)
        out.add("evidence", result.evidence)
        out.add("cause", result.cause)
        out.add("fix", result.fix)
        var details = JSONObject()
        for detail in result.details {
            switch detail.value {
            case .string(let text): details.add(detail.key, text)
            case .integer(let number): details.add(detail.key, number)
            case .number(let number): details.add(detail.key, number)
            case .flag(let flag): details.add(detail.key, flag)
            case .strings(let list): details.add(detail.key, list)
            case .null: details.add(detail.key, nil as String?)
            }
        }
        out.add("details", rawJSON: Array(details.json.utf8))
        return Array(out.json.utf8)
    }

    private static func array(_ items: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        for (index, item) in items.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += item
        }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }
}
