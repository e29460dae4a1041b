import EdgeStore

extension Packer {
    /// Packs records one at a time as they are read from the outbox (oldest first, one
    /// class), so that a window is never held twice: each record goes straight into its
    /// group's open request, and a request is built once it is full.
    ///
    /// The window ends where a request is full: once the budget is reached, a record that
    /// would open a new request (its group's request is full, or it goes alone (a message, an operation status), or its
    /// group has none) is refused (`offer` returns false) and the reader stops there; records
    /// that still fit an open request are taken. So a steady backlog leaves in full requests,
    /// not with a short one at every window's end. A hard cap at twice the budget bounds the
    /// window when many groups are open at once.
    ///
    /// Order is `pack`'s: records of one group fill one request at a time in the order they
    /// are offered, and `finish` returns requests oldest first.
    public struct Window {
        /// How much a window reads before it ends at the next full request.
        public struct Budget: Sendable, Equatable {
            public var maxRecords: Int
            /// Payload bytes.
            public var maxBytes: Int

            public init(maxRecords: Int, maxBytes: Int) {
                self.maxRecords = maxRecords
                self.maxBytes = maxBytes
            }

            /// No end: everything offered is taken (`Packer.pack`).
            public static let unlimited = Budget(maxRecords: .max / 2, maxBytes: .max / 2)
        }

        let limits: Limits
        let maxChildren: Int
        public let budget: Budget
        private var open: [OpenRequest] = []
        private var slot: [GroupKey: Int] = [:]
        /// The group of the last record: consecutive records of one device skip the hash.
        private var lastKey: GroupKey?
        private var lastSlot = 0
        private var closed: [UplinkRequest] = []
        private var oversized: [StoredRecord] = []
        /// Records taken and their payload bytes.
        public private(set) var records = 0
        public private(set) var bytes = 0

        init(limits: Limits, budget: Budget) {
            self.limits = limits
            self.maxChildren = max(1, limits.maxChildrenPerRequest)
            self.budget = budget
        }

        /// True when nothing was taken.
        public var isEmpty: Bool { records == 0 }

        var budgetReached: Bool { records >= budget.maxRecords || bytes >= budget.maxBytes }
        var hardCapReached: Bool { records >= budget.maxRecords * 2 || bytes >= budget.maxBytes * 2 }

        /// Takes `record` (the next in id order) into the window; false when the window has
        /// ended before it (the record was not taken: the next window starts with it).
        public mutating func offer(_ record: StoredRecord) -> Bool {
            offerPackable(record)
        }

        /// `offer(_:)` for a record or a row read in place.
        mutating func offerPackable(_ record: some PackableRecord) -> Bool {
            if hardCapReached { return false }
            if record.singleRecordBodyBytes > limits.maxBodyBytes {
                take(record)
                oversized.append(record.stored())
                return true
            }
            if record.kind.goesAlone {
                if budgetReached { return false }
                take(record)
                closed.append(UplinkRequest(records: [record.stored()]))
                return true
            }
            let key = GroupKey(record)
            let index: Int?
            if let lastKey, lastKey == key {
                index = lastSlot
            } else {
                index = slot[key]
            }
            if let index {
                // Mutate in place: copying the group out and back would copy its records
                // array on every append (quadratic in the window).
                if open[index].addIfFits(record, maxChildren: maxChildren) {
                    remember(key, index)
                    take(record)
                    return true
                }
                if budgetReached { return false }
                closed.append(open[index].build())
                open[index] = OpenRequest(kind: record.kind, maxBodyBytes: limits.maxBodyBytes)
                open[index].add(record)
                remember(key, index)
            } else {
                if budgetReached { return false }
                var fresh = OpenRequest(kind: record.kind, maxBodyBytes: limits.maxBodyBytes)
                fresh.add(record)
                open.append(fresh)
                slot[key] = open.count - 1
                remember(key, open.count - 1)
            }
            take(record)
            return true
        }

        private mutating func remember(_ key: GroupKey, _ index: Int) {
            lastKey = key
            lastSlot = index
        }

        private mutating func take(_ record: some PackableRecord) {
            records += 1
            bytes += record.payloadCount
        }

        /// The window's requests, oldest first, and the oversized records.
        public func finish() -> Result {
            var requests = closed
            for request in open where request.count > 0 { requests.append(request.build()) }
            // Oldest first. Within one group the first ids already ascend, so per-device order holds.
            requests.sort { $0.firstID < $1.firstID }
            return Result(requests: requests, oversized: oversized)
        }
    }
}

extension Packer {
    /// Reads and packs the next window: the oldest records of the most urgent class that has
    /// any (critical, then normal, then bulk), streamed from `store` into a `Window` and
    /// ending at the first full request past `budget`. `kinds` and `target` filter as in
    /// `OutboxStore.forEachRecord`. `after` skips, per class, the records up to an id (those
    /// already packed into requests still queued, while the next window is read ahead). Empty
    /// when no class has records.
    public func nextWindow(from store: OutboxStore, kinds: [RecordKind]?, target: String?, budget: Window.Budget,
                           after: [RecordClass: Int64] = [:]) throws -> Result {
        for cls in RecordClass.allCases {
            var window = self.window(budget: budget)
            try store.forEachRow(of: cls, afterID: after[cls] ?? 0, kinds: kinds, target: target) { window.offerPackable($0) }
            if !window.isEmpty { return window.finish() }
        }
        return Result(requests: [], oversized: [])
    }
}
