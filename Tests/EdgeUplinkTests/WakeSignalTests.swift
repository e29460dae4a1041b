import EdgeUplink
import Foundation
import TestSupport
import Testing

/// The WAL watch's pause and resume. No timing is asserted: a wait that must be signalled
/// has a long timeout and reports whether it was signalled.
@Suite struct WakeSignalTests {
    let dir = TemporaryDirectory()

    /// Appends to the database's -wal file, as another process's commit does.
    func commitFromAnotherProcess(_ path: String) throws {
        let wal = path + "-wal"
        if !FileManager.default.fileExists(atPath: wal) { FileManager.default.createFile(atPath: wal, contents: nil) }
        let handle = try #require(FileHandle(forWritingAtPath: wal))
        handle.seekToEndOfFile()
        handle.write(Data("commit".utf8))
        try handle.close()
    }

    #if os(Linux)
    @Test func aWriteToTheWALWakesAWaiter() async throws {
        let path = dir.file("a.db")
        let wake = WakeSignal()
        wake.watch(databasePath: path)
        defer { wake.stop() }
        try commitFromAnotherProcess(path)
        #expect(await wake.wait(timeout: .seconds(60)))
    }

    @Test func pausedWritesDoNotWakeAndResumeWatchesAgain() async throws {
        let path = dir.file("b.db")
        let wake = WakeSignal()
        wake.watch(databasePath: path)
        defer { wake.stop() }
        #expect(!wake.isPaused)
        wake.pause()
        #expect(wake.isPaused)
        try commitFromAnotherProcess(path)
        // Paused: nothing was signalled, so this wait runs to its (short) timeout.
        #expect(await wake.wait(timeout: .milliseconds(300)) == false)
        wake.resume()
        #expect(!wake.isPaused)
        try commitFromAnotherProcess(path)
        #expect(await wake.wait(timeout: .seconds(60)))
    }

    /// After `stop()` the watcher thread is gone and its descriptor closed by that thread: a
    /// descriptor closed under a thread blocked in read(2) leaves that read waiting on the old
    /// inotify instance (a WAL write then signals a stopped watch), and its next read goes to
    /// whatever file reused the number: a flush crashed on a "misaligned" inotify_event read
    /// from a database file.
    @Test func aStoppedWatchNeitherSignalsNorReadsAReusedDescriptor() async throws {
        let path = dir.file("d.db")
        let wake = WakeSignal()
        wake.watch(databasePath: path)
        // The watcher is in read(2) or poll(2) by now; a commit proves the thread runs.
        try commitFromAnotherProcess(path)
        #expect(await wake.wait(timeout: .seconds(60)))
        wake.stop()
        // Files opened now may take the watch's old descriptor numbers. Each holds what an
        // inotify read of a write to d.db-wal returns (wd 1, IN_MODIFY, cookie 0, len 16, the
        // name): a watcher reading one of them signals.
        var event = Data()
        for field: UInt32 in [1, 2, 0, 16] { withUnsafeBytes(of: field.littleEndian) { event.append(contentsOf: $0) } }
        event.append(contentsOf: Array("d.db-wal".utf8) + [UInt8](repeating: 0, count: 8))
        let decoys = try (0..<4).map { index -> FileHandle in
            let decoy = dir.file("decoy-\(index)")
            FileManager.default.createFile(atPath: decoy, contents: event)
            return try #require(FileHandle(forReadingAtPath: decoy))
        }
        defer { for decoy in decoys { try? decoy.close() } }
        try commitFromAnotherProcess(path)
        #expect(await wake.wait(timeout: .milliseconds(500)) == false, "a stopped watch signalled a WAL write")
    }

    @Test func inProcessSignalsArriveWhilePaused() async throws {
        let path = dir.file("c.db")
        let wake = WakeSignal()
        wake.watch(databasePath: path)
        defer { wake.stop() }
        wake.pause()
        wake.signal()
        #expect(await wake.wait(timeout: .seconds(60)))
    }
    #endif

    @Test func pauseAndResumeWithoutAWatchDoNothing() async {
        let wake = WakeSignal()
        wake.pause()
        #expect(!wake.isPaused)
        wake.resume()
        wake.signal()
        #expect(await wake.wait(timeout: .seconds(60)))
    }
}
