import ArgumentParser
import CPosix
import EdgeStore
import EdgeUplink
import Foundation

struct InboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbox",
        abstract: "Read the notifications the downlink received.",
        discussion: """
            Each notification is one JSON line: {"id":N,"kind":"notification","channel":"/operations/1",\
            "realtime_action":"CREATE","received_at":"...","data":{...}}. A gap marker \
            ({"kind":"gap","data":{"reason":...}}) says the session was re-established and \
            notifications sent meanwhile may be missing: fetch what matters over REST (inbox exec \
            --operations does it for Cumulocity operations). \
            --channel takes a glob: * matches any characters (/ included), ? one.
            """,
        subcommands: [InboxList.self, InboxFollow.self, InboxExec.self, InboxConsumers.self]
    )
}

struct ChannelFilter: ParsableArguments {
    @Option(help: ArgumentHelp("Only notifications on channels matching this glob (gap markers are always shown).", valueName: "glob"))
    var channel: String?
}

struct InboxList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List received notifications, oldest first.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var filter: ChannelFilter

    @Option(help: ArgumentHelp("Only rows with an id greater than this.", valueName: "id"))
    var since: Int64 = 0

    @Option(help: "At most this many rows.")
    var limit = 1000

    @Flag(help: "One JSON object per line, with the data.")
    var json = false

    func run() throws {
        do {
            _ = try global.bootstrapLogging()
            let db = try global.openConnection()
            for entry in try InboxStore(db).list(afterID: max(since, 0), channel: filter.channel, limit: max(limit, 0)) {
                print(json ? entry.jsonLine : Self.line(entry))
            }
        } catch {
            throw fail(error)
        }
    }

    static func line(_ entry: InboxEntry) -> String {
        let head = "\(String(entry.id).leftPadded(8))  \(Timestamp.format(milliseconds: entry.receivedAt))  "
        switch entry.kind {
        case .gap:
            return head + "GAP  \(entry.data)"
        case .notification:
            var data = entry.data
            if data.count > 100 { data = String(data.prefix(99)) + "…" }
            let action = entry.realtimeAction.map { " \($0)" } ?? (entry.recovered ? " RECOVERED" : "")
            return head + "\(entry.channel ?? "")\(action)  \(data)"
        }
    }
}

struct ConsumerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The consumer's name: its cursor is kept in the database under it ([A-Za-z0-9._-], up to 64).", valueName: "name"))
    var consumer: String

    @OptionGroup var filter: ChannelFilter

    @Flag(help: "Exit 0 once every stored notification is handled, instead of waiting for more.")
    var once = false

    func validate() throws {
        if let problem = InboxStore.consumerNameProblem(consumer) {
            throw ValidationError("--consumer \(problem)")
        }
    }
}

/// Walks the inbox for one consumer: rows after its cursor are handed over in batches; the
/// cursor moves past a row only once it is confirmed (`handle` returned true for it and
/// `confirm` for its batch). Follows new rows as they are committed (woken through the
/// database's WAL, from any process).
struct InboxCursor {
    let db: Connection
    let consumer: String
    let channel: String?
    let wake = WakeSignal()

    init(global: GlobalOptions, options: ConsumerOptions) throws {
        db = try global.openConnection()
        consumer = options.consumer
        channel = options.filter.channel
        wake.watch(databasePath: global.databasePath)
    }

    /// Runs until the consumer is gone (`handle` or `confirm` returned false; the result is
    /// then true) or, with `once`, the inbox is exhausted. With `confirmEach`, each row is
    /// confirmed on its own; otherwise `confirm` runs once per batch.
    func run(once: Bool, confirmEach: Bool, confirm: () -> Bool = { true },
             handle: (InboxEntry) async throws -> Bool) async throws -> Bool {
        defer { wake.stop() }
        let store = InboxStore(db)
        while !Task.isCancelled {
            let position = try store.position(of: consumer)
            let purged = try store.purgedThrough()
            if position < purged {
                // Retention removed rows this consumer never read: tell it, like a gap.
                let gap = InboxEntry(id: purged, kind: .gap, channel: nil, realtimeAction: nil,
                                     data: #"{"reason":"retention removed notifications up to id \#(purged) before consumer \#(consumer) read them"}"#,
                                     receivedAt: Timestamp.nowMilliseconds())
                guard try await handle(gap), confirm() else { return true }
                try advance(to: purged)
                continue
            }
            let rows = try store.list(afterID: position, channel: channel, limit: 256)
            if rows.isEmpty {
                // Rows of other channels may lie between: skip the cursor past them.
                let newest = try db.scalarInt("SELECT coalesce(max(id), 0) FROM inbox")
                if channel != nil, newest > position { try advance(to: newest) }
                if once { return false }
                await wake.wait(timeout: .seconds(2))
                continue
            }
            for row in rows {
                guard try await handle(row) else { return true }
                if confirmEach { try advance(to: row.id) }
            }
            if !confirmEach {
                guard confirm() else { return true }
                try advance(to: rows[rows.count - 1].id)
            }
        }
        return false
    }

    func advance(to id: Int64) throws {
        try db.transaction { try InboxStore(db).advance(consumer, to: id, now: Timestamp.nowMilliseconds()) }
    }
}

/// Waits until the reader of a pipe on `fd` has read everything written to it: true then,
/// false when the reader is gone. True at once for anything but a pipe (a file, a terminal),
/// where a completed write is all there is to know.
func waitUntilRead(fd: Int32) -> Bool {
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFIFO else { return true }
    var pause: Int32 = 1
    while true {
        let unread = cposix_unread_bytes(fd)
        if unread <= 0 { return unread == 0 }
        // With no events asked, poll reports only POLLERR/POLLHUP: the reader closed its end.
        var watch = pollfd(fd: fd, events: 0, revents: 0)
        if poll(&watch, 1, pause) > 0, watch.revents & Int16(POLLERR | POLLHUP) != 0 { return false }
        pause = min(pause * 2, 50)
    }
}

struct InboxFollow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow",
        abstract: "Stream notifications as JSON lines from the consumer's cursor, and keep following.",
        discussion: "The cursor moves past a line only after the reader has taken it: on a pipe, once the reader has read it out of the pipe; on a file or terminal, once it is written. A consumer that dies before reading a line sees it again when it comes back (at least once; lines it read just before dying may repeat). A new consumer starts at the oldest stored notification."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConsumerOptions

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        do {
            _ = try global.bootstrapLogging()
            let cursor = try InboxCursor(global: global, options: options)
            let gone = try await cursor.run(once: options.once, confirmEach: false, confirm: { waitUntilRead(fd: 1) }) { entry in
                FileOutput.standardOutput.writeAll(entry.jsonLine + "\n")
            }
            if gone { throw CLIFailure(status: .failure, message: "stdout was closed; the cursor of \(options.consumer) stays at the last line written") }
        } catch {
            throw fail(error)
        }
    }
}

struct InboxExec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command once per notification, with the notification's JSON line on stdin.",
        discussion: """
            The cursor moves past a notification only when COMMAND exits 0. A failure (non-zero \
            exit, a signal, --timeout) is audited and retried with exponential backoff; with \
            --max-attempts the notification is skipped (and the skip audited) after that many \
            failures. COMMAND also gets EDGEBUF_INBOX_ID, EDGEBUF_INBOX_KIND and \
            EDGEBUF_INBOX_CHANNEL in its environment. Example: edgebuf inbox exec --consumer ops \
            --channel '/operations/*' -- ./handle-operation.sh
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConsumerOptions

    @Option(help: ArgumentHelp("Give up on a notification after this many failed runs (0: never).", valueName: "n"))
    var maxAttempts = 0

    @Option(help: ArgumentHelp("Seconds before COMMAND is killed and the run counts as failed (0: no limit).", valueName: "seconds"))
    var timeout: Double = 300

    @Option(help: ArgumentHelp("The first retry delay in seconds; it doubles up to --retry-max.", valueName: "seconds"))
    var retryInitial: Double = 1

    @Option(help: ArgumentHelp("The longest retry delay in seconds.", valueName: "seconds"))
    var retryMax: Double = 60

    @Flag(help: "Cumulocity device control: report each operation's status (EXECUTING before COMMAND, SUCCESSFUL on exit 0, FAILED otherwise) and recover operations over REST at start and after gap markers. Needs [uplink] platform = \"cumulocity\".")
    var operations = false

    @Option(help: ArgumentHelp("With --operations: the device's managed object id (default: from the [downlink] channel /operations/ID).", valueName: "id"))
    var device: String?

    @Option(help: ArgumentHelp("With --operations: operations per page the recovery asks for (1 to 2000).", valueName: "n"))
    var recoveryPageSize = 100

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. edgebuf inbox exec --consumer ops -- ./handler.sh") }
        guard maxAttempts >= 0 else { throw ValidationError("--max-attempts must be 0 or more") }
        guard (1...2000).contains(recoveryPageSize) else { throw ValidationError("--recovery-page-size must be 1 to 2000") }
        guard timeout >= 0, retryInitial > 0, retryMax >= retryInitial else {
            throw ValidationError("--timeout must be >= 0, --retry-initial > 0 and --retry-max >= --retry-initial")
        }
    }

    func run() async throws {
        do {
            let logger = try global.bootstrapLogging()
            if operations {
                try await runOperations(logger: logger)
                return
            }
            let cursor = try InboxCursor(global: global, options: options)
            _ = try await cursor.run(once: options.once, confirmEach: true) { entry in
                var attempt = 0
                var delay = retryInitial
                while true {
                    attempt += 1
                    let outcome = Self.execute(command, entry: entry, timeout: timeout)
                    if outcome.succeeded { return true }
                    let giveUp = maxAttempts > 0 && attempt >= maxAttempts
                    try audit(entry, outcome: outcome, attempt: attempt, giveUp: giveUp, retryIn: delay, db: cursor.db)
                    FileOutput.standardError.write("edgebuf: inbox exec: notification \(entry.id): \(outcome.description) (attempt \(attempt))\(giveUp ? "; skipped after --max-attempts" : String(format: "; retrying in %.1f s", delay))\n")
                    if giveUp { return true }
                    try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                    delay = min(delay * 2, retryMax)
                }
            }
        } catch {
            throw fail(error)
        }
    }

    private func audit(_ entry: InboxEntry, outcome: Outcome, attempt: Int, giveUp: Bool, retryIn: Double, db: Connection) throws {
        var detail = JSONObject()
        detail.add("consumer", options.consumer)
        detail.add("inbox_id", entry.id)
        detail.add("channel", entry.channel)
        detail.add("command", command[0])
        detail.add("result", outcome.description)
        detail.add("attempt", attempt)
        if giveUp {
            detail.add("outcome", "skipped")
        } else {
            detail.add("outcome", "retry")
            detail.add("retry_in_ms", Int64(retryIn * 1000))
        }
        try db.transaction { _ = try AuditLog(db).append(giveUp ? "inbox_exec_skipped" : "inbox_exec_failed", detail) }
    }

    struct Outcome: CustomStringConvertible {
        var status: Int32?
        var signal: Int32?
        var timedOut = false
        var launchError: String?

        /// With `capture`: the last bytes the command wrote to stdout and stderr.
        var stdoutTail: [UInt8] = []
        var stderrTail: [UInt8] = []

        var succeeded: Bool { status == 0 && !timedOut }
        var description: String {
            if let launchError { return "could not start: \(launchError)" }
            if timedOut { return "killed after the --timeout" }
            if let signal { return "killed by signal \(signal)" }
            return "exit status \(status ?? -1)"
        }
    }

    /// Runs the command in a process group of its own, with the entry's JSON line on stdin,
    /// and waits for it; at the timeout the whole group (the command and anything it
    /// started) gets SIGTERM, then SIGKILL 5 s later.
    /// With `capture`, the command's stdout and stderr go through pipes: copied to ours as they
    /// come, and their last 4 KiB kept (`stdoutTail`, `stderrTail`).
    static func execute(_ command: [String], entry: InboxEntry, timeout: Double, capture: Bool = false,
                        environment extra: [String: String] = [:]) -> Outcome {
        var environment = ProcessInfo.processInfo.environment
        environment["EDGEBUF_INBOX_ID"] = String(entry.id)
        environment["EDGEBUF_INBOX_KIND"] = entry.kind.rawValue
        environment["EDGEBUF_INBOX_CHANNEL"] = entry.channel ?? ""
        for (key, value) in extra { environment[key] = value }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { return Outcome(launchError: "pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        var outputs: [(read: Int32, write: Int32, ours: Int32)] = []
        if capture {
            for ours in [Int32(1), Int32(2)] {
                var ends: [Int32] = [0, 0]
                guard pipe(&ends) == 0 else {
                    close(readEnd); close(writeEnd)
                    outputs.forEach { close($0.read); close($0.write) }
                    return Outcome(launchError: "pipe: \(String(cString: strerror(errno)))")
                }
                outputs.append((ends[0], ends[1], ours))
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, readEnd, 0)
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_addclose(&actions, writeEnd)
        for output in outputs {
            posix_spawn_file_actions_adddup2(&actions, output.write, output.ours)
            posix_spawn_file_actions_addclose(&actions, output.write)
            posix_spawn_file_actions_addclose(&actions, output.read)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, command[0], &actions, &attributes, argv, envp)
        close(readEnd)
        outputs.forEach { close($0.write) }
        guard spawned == 0 else {
            close(writeEnd)
            outputs.forEach { close($0.read) }
            return Outcome(launchError: "\(command[0]): \(String(cString: strerror(spawned)))")
        }
        var tails: [[UInt8]] = Array(repeating: [], count: outputs.count)
        var open = outputs.map { _ in true }
        /// Copies what the command wrote so far (without blocking) and keeps the tails.
        func pump() {
            var buffer = [UInt8](repeating: 0, count: 16384)
            for (index, output) in outputs.enumerated() where open[index] {
                while true {
                    var watch = pollfd(fd: output.read, events: Int16(POLLIN), revents: 0)
                    guard poll(&watch, 1, 0) > 0 else { break }
                    let count = read(output.read, &buffer, buffer.count)
                    if count <= 0 { open[index] = false; break }
                    FileOutput(fd: output.ours).write(Array(buffer[..<count]))
                    tails[index].append(contentsOf: buffer[..<count])
                    if tails[index].count > 4096 { tails[index].removeFirst(tails[index].count - 4096) }
                }
            }
        }
        defer { outputs.forEach { close($0.read) } }
        // A handler that does not read stdin must not kill us: with SIGPIPE ignored the
        // write fails with EPIPE instead.
        signal(SIGPIPE, SIG_IGN)
        _ = FileOutput(fd: writeEnd).writeAll(entry.jsonLine + "\n")
        close(writeEnd)

        let deadline = timeout > 0 ? ContinuousClock.now + .milliseconds(Int64(timeout * 1000)) : nil
        var killAt: ContinuousClock.Instant?
        var timedOut = false
        var status: Int32 = 0
        while true {
            pump()
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR { return Outcome(launchError: "waitpid: \(String(cString: strerror(errno)))") }
            let now = ContinuousClock.now
            if let deadline, now >= deadline, !timedOut {
                timedOut = true
                kill(-pid, SIGTERM)
                killAt = now + .seconds(5)
            }
            if let at = killAt, now >= at {
                kill(-pid, SIGKILL)
                killAt = nil
            }
            usleep(10_000)
        }
        pump()
        var outcome: Outcome
        if timedOut {
            kill(-pid, SIGKILL)  // anything of the group still left
            outcome = Outcome(timedOut: true)
        } else {
            // WIFEXITED / WTERMSIG are macros: decode the status word by hand.
            let signalNumber = status & 0x7f
            outcome = signalNumber == 0 ? Outcome(status: (status >> 8) & 0xff) : Outcome(signal: signalNumber)
        }
        if capture {
            outcome.stdoutTail = tails[0]
            outcome.stderrTail = tails[1]
        }
        return outcome
    }
}

struct InboxConsumers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consumers", abstract: "List consumers, their cursors and how far behind they are.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() throws {
        do {
            _ = try global.bootstrapLogging()
            let db = try global.openConnection()
            let store = InboxStore(db)
            let newest = try store.totals().newestID ?? 0
            for consumer in try store.consumers() {
                let behind = try db.scalarInt("SELECT count(*) FROM inbox WHERE id > \(consumer.position)")
                if json {
                    var out = JSONObject()
                    out.add("consumer", consumer.name)
                    out.add("position", consumer.position)
                    out.add("behind", behind)
                    out.add("newest_id", newest)
                    out.add("updated_at", Timestamp.format(milliseconds: consumer.updatedAt))
                    print(out.json)
                } else {
                    print("\(consumer.name.padding(toLength: 24, withPad: " ", startingAt: 0)) at \(consumer.position), \(behind) behind (updated \(Timestamp.format(milliseconds: consumer.updatedAt)))")
                }
            }
        } catch {
            throw fail(error)
        }
    }
}
