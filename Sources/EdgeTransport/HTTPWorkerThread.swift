import Foundation

/// The dedicated thread behind an `HTTPClient`: it creates and owns one `HTTPConnection`
/// (a libcurl handle must stay on one thread) and runs queued requests one at a time, so
/// the blocking `curl_easy_perform` never occupies the cooperative thread pool.
///
/// `@unchecked Sendable`: all mutable state is guarded by `condition`.
final class HTTPWorkerThread: @unchecked Sendable {
    typealias Completion = CheckedContinuation<Result<HTTPResponse, TransportError>, Never>

    /// One queued request and the continuation waiting for it.
    struct Job: Sendable {
        let request: HTTPRequest
        let cancellation: CancellationFlag
        let completion: Completion
    }

    private enum State { case starting, running, stopping, stopped }

    private let condition = NSCondition()
    private var state = State.starting          // guarded by `condition`
    private var startError: TransportError?     // guarded by `condition`
    private var queue: [Job] = []               // guarded by `condition`
    private var exitWaiters: [CheckedContinuation<Void, Never>] = [] // guarded by `condition`

    /// Starts the thread and waits (briefly) until it has created its connection, so that a
    /// configuration libcurl rejects fails here rather than on the first request.
    init(configuration: TransportConfiguration, name: String) throws(TransportError) {
        let thread = Thread { [self] in run(configuration) }
        thread.name = name
        thread.start()
        condition.lock()
        while state == .starting { condition.wait() }
        let error = startError
        condition.unlock()
        if let error { throw error }
    }

    /// Queues a job; fails it at once if the worker is stopping or the job is already cancelled.
    func submit(_ job: Job) {
        condition.lock()
        guard state == .running else {
            condition.unlock()
            job.completion.resume(returning: .failure(.shutDown(url: job.request.url)))
            return
        }
        guard !job.cancellation.isCancelled else {
            condition.unlock()
            job.completion.resume(returning: .failure(.cancelled(url: job.request.url)))
            return
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Removes a cancelled job that has not started yet and fails it. A running job is
    /// aborted by its flag instead (libcurl's progress callback polls it).
    func withdraw(_ cancellation: CancellationFlag) {
        condition.lock()
        let index = queue.firstIndex { $0.cancellation === cancellation }
        let job = index.map { queue.remove(at: $0) }
        condition.unlock()
        job?.completion.resume(returning: .failure(.cancelled(url: job?.request.url)))
    }

    /// Stops accepting work and fails queued jobs; the running one finishes (bounded by its
    /// timeout), then the thread frees its connection and exits.
    func stop() {
        condition.lock()
        if state == .running || state == .starting { state = .stopping }
        let dropped = queue
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
        for job in dropped {
            job.completion.resume(returning: .failure(.shutDown(url: job.request.url)))
        }
    }

    /// Returns once the thread has exited and the libcurl handle is freed.
    func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if state == .stopped {
                condition.unlock()
                continuation.resume()
            } else {
                exitWaiters.append(continuation)
                condition.unlock()
            }
        }
    }

    // MARK: On the worker thread

    private func run(_ configuration: TransportConfiguration) {
        do {
            let connection = try HTTPConnection(configuration: configuration)
            condition.lock()
            if state == .starting { state = .running }
            condition.broadcast()
            condition.unlock()
            while let job = next() {
                let result: Result<HTTPResponse, TransportError>
                do {
                    result = .success(try connection.perform(job.request, cancellation: job.cancellation))
                } catch {
                    result = .failure(error)
                }
                job.completion.resume(returning: result)
            }
            // `connection` (and its libcurl handle) is released at the end of this scope.
        } catch {
            condition.lock()
            startError = error
            condition.unlock()
        }
        condition.lock()
        state = .stopped
        let waiters = exitWaiters
        exitWaiters.removeAll()
        condition.broadcast()
        condition.unlock()
        for waiter in waiters { waiter.resume() }
    }

    /// Blocks until there is a job, or returns nil once stopping.
    private func next() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && state == .running { condition.wait() }
        guard state == .running else { return nil }
        return queue.removeFirst()
    }
}
