// The downlink's CPU per notification without the network: what the engine does with each
// long-poll answer (parse it, key every notification, one inbox transaction with its audit
// row), on answers shaped like Faye's under load (bench_downlink.py's operations, 50 per
// answer). Prints the dedupe key's share of that CPU (the key computed again, alone, over the
// same stored data). Run it under `valgrind --tool=callgrind` for instruction counts, which
// stay put on a busy machine:
//
//   edgebuf-bench downlink-cpu [--answers 200] [--per-answer 50] [--intake-only] [--dir DIR] [--json FILE]
import EdgeDownlink
import EdgeStore
import Foundation

enum DownlinkCPU {
    /// A Faye answer to a connect under load: the events, then the connect reply.
    static func answer(_ number: Int, events: Int) -> [UInt8] {
        var parts: [String] = []
        for index in 0..<events {
            let n = number * events + index
            parts.append(#"{"channel":"/operations/4711","data":{"realtimeAction":"CREATE","data":{"id":"F\#(n)","deviceId":"4711","status":"PENDING","description":"benchmark operation","creationTime":"2026-11-22T10:00:00.000Z","self":"https://t1.example.com/devicecontrol/operations/F\#(n)","c8y_Command":{"text":"set interval 60"},"bench":{"p":"F","n":\#(n),"t":1764400000000000000}}},"id":"\#(n + 7)"}"#)
        }
        parts.append(#"{"id":"\#(number + 3)","clientId":"6ocdk0sbmwy2eaq4gdq2i4pzd1b8dv2","channel":"/meta/connect","successful":true,"advice":{"reconnect":"retry","interval":0,"timeout":45000}}"#)
        return Array(("[" + parts.joined(separator: ",") + "]").utf8)
    }

    /// Process CPU time (user + system) in seconds.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func main(arguments: [String]) -> Int32 {
        let answers = Int(arguments.option("--answers") ?? "200") ?? 200
        let perAnswer = Int(arguments.option("--per-answer") ?? "50") ?? 50
        let dir = arguments.option("--dir") ?? NSTemporaryDirectory() + "edgebuf-bench-downlink-cpu"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let path = fresh(dir, "inbox.db")
            let db = try Database.open(path: path)
            let bodies = (0..<answers).map { answer($0, events: perAnswer) }

            // The engine's work per answer.
            var stored: [InboxNotification] = []
            let startIntake = cpuSeconds()
            for body in bodies {
                let notifications = try BayeuxMessage.parseAnswer(body).filter { !$0.isMeta }.flatMap(\.notifications)
                let rows = notifications.map {
                    InboxNotificationRow(channel: $0.channel, dedupeKey: $0.key.value, realtimeAction: $0.realtimeAction, data: $0.data)
                }
                try db.transaction { _ = try InboxStore(db).insert(rows, gap: nil, receivedAt: Timestamp.nowMilliseconds()) }
                if stored.count < 10_000 { stored.append(contentsOf: notifications) }
            }
            let intake = cpuSeconds() - startIntake
            let count = answers * perAnswer

            // The key alone, over the same stored data, as many times.
            let startKey = cpuSeconds()
            var checksum = 0
            var done = 0
            // --intake-only: for callgrind, so that the key's inclusive cost is the intake's alone.
            while done < count && !arguments.contains("--intake-only") {
                for notification in stored where done < count {
                    checksum &+= keyOf(notification).count
                    done += 1
                }
            }
            let key = cpuSeconds() - startKey
            let share = key / intake
            print("downlink CPU: \(count) notifications in \(answers) answers: intake (parse, key, commit) \(String(format: "%.1f", intake / Double(count) * 1e6)) us each; the dedupe key alone \(String(format: "%.1f", key / Double(count) * 1e6)) us each: \(String(format: "%.1f", share * 100)) % of the CPU per notification (target < 10 %) [\(checksum % 10)]")
            if let jsonPath = arguments.option("--json") {
                var out = JSONObject()
                out.add("notifications", count)
                out.add("intake_us_per_notification", intake / Double(count) * 1e6)
                out.add("key_us_per_notification", key / Double(count) * 1e6)
                out.add("key_share_of_cpu", share)
                try out.json.write(toFile: jsonPath, atomically: true, encoding: .utf8)
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("edgebuf-bench downlink-cpu: \(error)\n".utf8))
            return 1
        }
    }

    /// The key of a stored notification, computed again the way the parser computes it.
    @inline(never)
    static func keyOf(_ notification: InboxNotification) -> String {
        NotificationKey.make(channel: notification.channel, json: notification.data).value
    }
}
