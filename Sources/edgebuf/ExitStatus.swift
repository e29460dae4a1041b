import ArgumentParser
import EdgeBuffer
import EdgeStore

/// The exit codes users script against. Documented in the README ("Exit codes"); never
/// renumber one.
enum ExitStatus: Int32, CaseIterable {
    case ok = 0
    /// Something edgebuf did not expect (a bug): the message says what.
    case failure = 1
    /// `audit verify` found the chain broken.
    case auditBroken = 3
    /// Wrong flags or arguments (swift-argument-parser's own code).
    case usage = 64
    /// A record was refused by validation; nothing of it was stored.
    case invalidInput = 65
    /// An input file could not be read.
    case noInput = 66
    /// The platform could not be reached or refused us (`flush` could not drain).
    case unavailable = 69
    /// A database error (locked for too long, I/O error, damaged or foreign file).
    case databaseError = 74
    /// The outbox is full under policy reject-new; the record was NOT stored.
    case outboxFull = 75
    /// The disk holding the database is full; nothing of the failed transaction was stored.
    case diskFull = 76
    /// Permission denied on the database or its directory.
    case permissionDenied = 77
    /// The configuration file is wrong.
    case configError = 78

    var code: ExitCode { ExitCode(rawValue) }
}

/// A failure already explained to the user, carrying its exit status.
struct CLIFailure: Error, CustomStringConvertible {
    let status: ExitStatus
    let message: String
    var description: String { message }
}

extension ExitStatus {
    /// The exit status for an error from the library.
    static func of(_ error: any Error) -> ExitStatus {
        switch error {
        case let failure as CLIFailure: return failure.status
        case is EdgeStore.ValidationError: return .invalidInput
        case is OutboxFullError: return .outboxFull
        case is ConfigurationError: return .configError
        case let db as DatabaseError:
            if db.isDiskFull { return .diskFull }
            if db.isReadOnly { return .permissionDenied }
            return .databaseError
        default: return .failure
        }
    }
}

/// Prints `edgebuf: <message>` on stderr and exits with the error's status.
func fail(_ error: any Error) -> ExitCode {
    printError("edgebuf: \(error)")
    return ExitStatus.of(error).code
}

func printError(_ text: String) {
    var line = text
    line.append("\n")
    FileOutput.standardError.write(line)
}
