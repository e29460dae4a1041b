import Logging
import ServiceLifecycle
import UnixSignals

/// One engine of `edgebuf run` (the uplink, the downlink, the audit's retention) and the part
/// of the configuration it was built from.
struct EngineSlot: Sendable {
    /// `uplink`, `downlink`, `audit retention`: used in log lines.
    let name: String
    /// What the engine was built from; a reload restarts the engine only when this changed.
    let settings: any Equatable & Sendable
    /// Builds the engine (opening its connections); called at start and after a change.
    let make: @Sendable () throws -> any Service

    /// Whether `other` was built from the same settings.
    func sameSettings(as other: EngineSlot) -> Bool {
        func equal<T: Equatable>(_ a: T, _ b: any Equatable) -> Bool { (b as? T) == a }
        return equal(settings, other.settings)
    }
}

/// The engines of `edgebuf run`, and SIGHUP: the configuration is read again and, when it is
/// valid, each engine whose settings changed is stopped gracefully (as by SIGTERM: a request
/// in flight is abandoned without deleting anything, the downlink disconnects) and started
/// again with the new settings; engines whose settings did not change keep running. A
/// configuration that cannot be read is refused with a log line, and the running one stays.
///
/// Each engine runs in a one-service `ServiceGroup` of its own, so one can be shut down
/// gracefully without the others; every group hears the daemon's own graceful shutdown.
final class EngineSupervisor: Service, @unchecked Sendable {
    private let initial: [EngineSlot]
    private let reload: @Sendable () throws -> [EngineSlot]
    private let logger: Logger
    private let notifier: SystemdNotifier

    /// - Parameters:
    ///   - reload: reads the configuration again; throws (with the message to log) when it
    ///     cannot be used.
    init(slots: [EngineSlot], reload: @escaping @Sendable () throws -> [EngineSlot], logger: Logger,
         notifier: SystemdNotifier) {
        self.initial = slots
        self.reload = reload
        self.logger = logger
        self.notifier = notifier
    }

    private enum Event: Sendable {
        case hangup
        case ended(name: String, generation: Int, error: (any Error)?)
        case shutdown
    }

    /// What runs for one slot name.
    private struct Running {
        var slot: EngineSlot
        var generation: Int
        var group: ServiceGroup
        /// The settings to start once this generation has stopped (after a reload).
        var next: EngineSlot?
        /// Set when this slot was removed from the configuration: not started again.
        var removed = false
    }

    func run() async throws {
        let (events, post) = AsyncStream<Event>.makeStream()
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                var running: [String: Running] = [:]
                var generation = 0
                var shuttingDown = false

                func start(_ slot: EngineSlot) throws {
                    generation += 1
                    let service = try slot.make()
                    let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [service], logger: logger))
                    let mine = generation
                    running[slot.name] = Running(slot: slot, generation: mine, group: group)
                    tasks.addTask {
                        do {
                            try await group.run()
                            post.yield(.ended(name: slot.name, generation: mine, error: nil))
                        } catch {
                            post.yield(.ended(name: slot.name, generation: mine, error: error))
                        }
                    }
                }

                tasks.addTask {
                    for await _ in hangups { post.yield(.hangup) }
                }
                for slot in initial { try start(slot) }
                notifier.notify("READY=1\nSTATUS=running: \(initial.map(\.name).joined(separator: ", "))")

                for await event in events {
                    switch event {
                    case .shutdown:
                        shuttingDown = true
                        notifier.notify("STOPPING=1")
                        // Each group hears the graceful shutdown itself; wait for them.

                    case .hangup:
                        guard !shuttingDown else { continue }
                        notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())")
                        for slot in await applyReload(&running) {
                            do {
                                try start(slot)
                            } catch {
                                logger.error("engine could not start with the new configuration",
                                             metadata: ["edgebuf.engine": "\(slot.name)", "edgebuf.reload.error": "\(error)"])
                            }
                        }
                        notifier.notify("READY=1\nSTATUS=running: \(running.keys.sorted().joined(separator: ", "))")

                    case let .ended(name, ended, error):
                        guard let current = running[name], current.generation == ended else { continue }
                        if let error { throw error }
                        running[name] = nil
                        if shuttingDown || current.removed {
                            // Stopped for good.
                        } else if let next = current.next {
                            // The settings were read fine a moment ago; an engine that cannot
                            // start with them (the database went away, ...) stops the daemon
                            // as a failed start would.
                            try start(next)
                            logger.notice("engine restarted with the new configuration", metadata: ["edgebuf.engine": "\(name)"])
                        } else {
                            // An engine that returned by itself ends the daemon, as before
                            // reloads existed (a ServiceGroup ends when one service does).
                            for other in running.values { await other.group.triggerGracefulShutdown() }
                            shuttingDown = true
                        }
                    }
                    if shuttingDown && running.isEmpty { break }
                }
                tasks.cancelAll()
            }
        } onGracefulShutdown: {
            post.yield(.shutdown)
        }
    }

    /// Reads the configuration again and arranges the restarts it calls for: engines whose
    /// settings changed are asked to stop (and marked with the settings to start then);
    /// returns the engines to start now (new in the configuration).
    private func applyReload(_ running: inout [String: Running]) async -> [EngineSlot] {
        let slots: [EngineSlot]
        do {
            slots = try reload()
        } catch {
            logger.error("configuration reload refused; the running configuration stays in force",
                         metadata: ["edgebuf.reload.error": "\(error)"])
            return []
        }
        var changed: [String] = []
        let wanted = Dictionary(slots.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for (name, var current) in running {
            let desired = current.next ?? current.slot
            if let slot = wanted[name] {
                if !slot.sameSettings(as: desired) || current.removed {
                    if current.next == nil && !current.removed { await current.group.triggerGracefulShutdown() }
                    current.next = slot
                    current.removed = false
                    changed.append(name)
                }
            } else if !current.removed {
                await current.group.triggerGracefulShutdown()
                current.removed = true
                changed.append("\(name) (removed)")
            }
            running[name] = current
        }
        let added = slots.filter { running[$0.name] == nil }
        changed += added.map { "\($0.name) (added)" }
        if changed.isEmpty {
            logger.notice("configuration reloaded: nothing changed, every engine keeps running")
        } else {
            logger.notice("configuration reloaded", metadata: ["edgebuf.reload.restarting": "\(changed.sorted().joined(separator: ", "))"])
        }
        return added
    }
}
