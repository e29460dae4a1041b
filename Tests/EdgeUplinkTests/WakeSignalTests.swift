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
