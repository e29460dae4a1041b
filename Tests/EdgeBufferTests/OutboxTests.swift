import EdgeBuffer
@testable import EdgeStore
import Foundation
import TestSupport
import Testing

@Suite struct OutboxTests {
    let dir = TemporaryDirectory()

    func input(_ n: Int, device: String = "d1") -> RecordInput {
        var input = RecordInput(kind: .property)
        input.deviceID = device
        input.serviceID = "S"
        input.properties = Array(#"{"n":\#(n)}"#.utf8)
        return input
    }

    @Test func manyConcurrentProducersAllGetDurableDistinctIDs() async throws {
        let path = dir.file("g.db")
        let outbox = try Outbox(path: path)
        let ids = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for producer in 0..<64 {
                group.addTask {
                    var mine: [Int64] = []
                    for n in 0..<20 { mine.append(try await outbox.enqueue(input(producer * 100 + n))) }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        outbox.close()
        #expect(ids.count == 64 * 20)
        #expect(Set(ids).count == ids.count)
        let db = try Database.open(path: path)
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == 1280)
        // Each producer's records are stored in the order it enqueued them.
        #expect(try db.scalarInt("SELECT count(DISTINCT CAST(json_extract(payload, '$.properties.n') AS INTEGER)) FROM outbox") == 1280)
    }

    @Test func aBatchIsAllOrNothing() async throws {
        var configuration = OutboxConfiguration()
        configuration.database.capacity = CapacityPolicy(maxRecords: 5)
        let path = dir.file("b.db")
        let outbox = try Outbox(path: path, configuration: configuration)
        let now = Timestamp.nowMilliseconds()
        let records = try (0..<4).map { try input($0).validated(now: now, maxBodyBytes: 1 << 20) }
        _ = try await outbox.enqueue(records)
        await #expect(throws: OutboxFullError.self) { _ = try await outbox.enqueue(records) }
        let ids = try await outbox.enqueue([records[0]])
        #expect(ids.count == 1)
        outbox.close()
        let db = try Database.open(path: path)
        #expect(try db.scalarInt("SELECT count(*) FROM outbox") == 5, "the first batch and the last record; nothing of the refused batch")
    }

    /// Two batches of two race for three places: one is stored whole and gets its ids, the
    /// other is refused whole with the outbox-full error (not any error), and the table holds
    /// exactly the winner's rows.
    @Test func aFullOutboxFailsOnlyTheRequestThatDoesNotFit() async throws {
        var configuration = OutboxConfiguration()
        configuration.database.capacity = CapacityPolicy(maxRecords: 3)
        let path = dir.file("f.db")
        let outbox = try Outbox(path: path, configuration: configuration)
        let now = Timestamp.nowMilliseconds()
        let two = try (0..<2).map { try input($0).validated(now: now, maxBodyBytes: 1 << 20) }
        let results = await withTaskGroup(of: Result<[Int64], any Error>.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    do { return .success(try await outbox.enqueue(two)) } catch { return .failure(error) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        outbox.close()
        let stored = results.compactMap { try? $0.get() }
        let refused = results.compactMap { result -> (any Error)? in
            if case .failure(let error) = result { return error }
            return nil
        }
        #expect(stored.count == 1 && refused.count == 1, "one batch of two fits, the other is refused whole: \(results)")
        let ids = try #require(stored.first)
        #expect(ids.count == 2)
        let full = try #require(refused.first as? OutboxFullError, "refused with the outbox-full error, not \(refused)")
        #expect(full.limit == "max_records")
        #expect(full.records == 2, "the refusal saw the two records stored before it")
        let db = try Database.open(path: path)
        let rows = try db.prepare("SELECT id FROM outbox ORDER BY id")
        var storedIDs: [Int64] = []
        while try rows.step() { storedIDs.append(rows.int64(0)) }
        #expect(storedIDs == ids, "exactly the accepted batch's rows are stored")
        #expect(try OutboxStore(db).total().records == 2)
    }

    @Test func invalidInputIsRefusedBeforeTheWriter() async throws {
        let outbox = try Outbox(path: dir.file("v.db"))
        defer { outbox.close() }
        var bad = input(1)
        bad.properties = Array("[]".utf8)
        await #expect(throws: ValidationError.self) { try await outbox.enqueue(bad) }
    }

    @Test func maxAgeExpiresOnTheWriter() async throws {
        var configuration = OutboxConfiguration()
        configuration.database.capacity.maxAgeMilliseconds = 1
        let path = dir.file("age.db")
        let outbox = try Outbox(path: path, configuration: configuration)
        let first = try await outbox.enqueue(input(1))
        try await Task.sleep(for: .milliseconds(1100))
        _ = try await outbox.enqueue(input(2))
        outbox.close()
        let db = try Database.open(path: path)
        #expect(try !OutboxStore(db).contains(id: first))
        #expect(try AuditLog(db).list().map(\.event) == ["expired"])
    }

    @Test func theCommitHookFires() async throws {
        let count = Counter()
        let outbox = try Outbox(path: dir.file("h.db"), onCommit: { count.increment() })
        _ = try await outbox.enqueue(input(1))
        outbox.close()
        #expect(count.value >= 1)
    }

    @Test func enqueueAfterCloseIsRefused() async throws {
        let outbox = try Outbox(path: dir.file("c.db"))
        outbox.close()
        await #expect(throws: OutboxClosedError.self) { try await outbox.enqueue(input(1)) }
    }

    @Test func openingAForeignFileFailsInInit() throws {
        let path = dir.file("foreign.db")
        let db = try Connection(path: path, create: true)
        try db.execute("CREATE TABLE x (y)")
        #expect(throws: DatabaseError.self) { _ = try Outbox(path: path) }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
