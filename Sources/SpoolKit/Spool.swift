// The spool directory and the daemon's places in it (see README.md in this folder for
// what is on disk at each step). Every move a job makes between places is here.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation

/// Where a job lies: the spool itself, or one of the daemon's directories.
public enum JobPlace: String, Sendable, Hashable, CaseIterable {
    case queued, deferred, held, bad
}

public struct Spool: Sendable {
    public let root: String
    public var badDirectory: String { root + "/bad" }
    public var deferredDirectory: String { root + "/deferred" }
    public var holdDirectory: String { root + "/hold" }
    public var stateDirectory: String { root + "/.state" }
    public var lockPath: String { root + "/.poold.lock" }
    public var statusPath: String { stateDirectory + "/status.json" }

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    /// Creates the daemon's directories; the spool itself must exist.
    public func prepare() throws {
        guard (try? FileSystem.status(root))?.isDirectory == true else {
            throw SystemError("spool directory", path: root, errno: ENOENT)
        }
        try FileSystem.makeDirectory(badDirectory)
        try FileSystem.makeDirectory(deferredDirectory)
        try FileSystem.makeDirectory(holdDirectory)
        // 0750: operators in the daemon's group read status.json; journals are 0600.
        try FileSystem.makeDirectory(stateDirectory, mode: 0o750)
    }

    // MARK: listing

    /// Job names in a directory (the spool itself by default), unsorted.
    public func jobs(in directory: String? = nil) throws -> [JobName] {
        try FileSystem.names(in: directory ?? root).compactMap(JobName.init)
    }

    /// Bad jobs (the `.why` files are not counted).
    public func badJobs() -> [String] {
        ((try? FileSystem.names(in: badDirectory)) ?? []).filter { !$0.hasSuffix(".why") && !$0.hasPrefix(".") }
    }

    /// Jobs set aside in `hold/` (none when it cannot be listed).
    public func heldJobs() -> [JobName] {
        (try? jobs(in: holdDirectory)) ?? []
    }

    // MARK: places

    /// Where a job of this name lies in `place`. The only function that builds a job's
    /// path: a `JobName` cannot hold a `/` or start with a dot, so no name escapes the spool.
    public func path(of name: JobName, in place: JobPlace) -> String {
        let directory = directory(for: place)
        var path = String()
        path.reserveCapacity(directory.utf8.count + 1 + name.fileName.utf8.count)
        path += directory
        path += "/"
        path += name.fileName
        return path
    }

    public func directory(for place: JobPlace) -> String {
        switch place {
        case .queued: return root
        case .deferred: return deferredDirectory
        case .held: return holdDirectory
        case .bad: return badDirectory
        }
    }

    // MARK: moves

    /// Moves a file that is not valid BSMTP to `bad/`, the reason written first.
    public func quarantine(_ name: JobName, from place: JobPlace, reason: String) throws {
        let why = reason.hasSuffix("\n") ? reason : reason + "\n"
        try AtomicFile.write(directory: badDirectory, name: name.fileName + ".why", bytes: Array(why.utf8))
        try move(name, from: place, to: .bad)
    }

    /// Moves a job to `deferred/` (its journal stays valid: same inode).
    public func moveToDeferred(_ name: JobName, from place: JobPlace) throws {
        if place == .deferred { return }
        try move(name, from: place, to: .deferred)
    }

    /// Moves a job to `hold/` (`poolctl hold`); its journal stays valid (same inode).
    public func hold(_ name: JobName, from place: JobPlace) throws {
        try move(name, from: place, to: .held)
    }

    /// Moves a held job (or a fixed bad one) back into the spool without replacing a job
    /// of the same name.
    public func bringBack(_ name: JobName, from place: JobPlace) throws {
        let source = path(of: name, in: place)
        try FileSystem.link(source, path(of: name, in: .queued))
        try FileSystem.unlink(source)
        try FileSystem.syncDirectory(root)
        try FileSystem.syncDirectory(directory(for: place))
    }

    /// Removes a finished job, then its journal. The directory is not fsynced: after a
    /// power loss a finished job may come back and be sent again (a duplicate, never a
    /// loss), and the daemon saves an fsync per job, which on a busy spool is most of its
    /// disk time. Postfix removes its queue files the same way.
    public func finish(_ name: JobName, in place: JobPlace, journal: String?) throws {
        try FileSystem.unlink(path(of: name, in: place), missingOK: true)
        if let journal { try FileSystem.unlink(journal, missingOK: true) }
    }

    private func move(_ name: JobName, from: JobPlace, to: JobPlace) throws {
        try FileSystem.rename(path(of: name, in: from), path(of: name, in: to))
        try FileSystem.syncDirectory(directory(for: to))
        try FileSystem.syncDirectory(directory(for: from))
    }

    public func journalPath(for name: JobName, inode: UInt64) -> String {
        let number = String(inode)
        var path = String()
        path.reserveCapacity(root.utf8.count + 8 + name.fileName.utf8.count + 1 + number.utf8.count + 8)
        path += root
        path += "/.state/"
        path += name.fileName
        path += "."
        path += number
        path += ".journal"
        return path
    }

    /// The journal files in `.state/` (full paths).
    public func journals() throws -> Set<String> {
        Set(try FileSystem.names(in: stateDirectory).filter { $0.hasSuffix(".journal") }.map { stateDirectory + "/" + $0 })
    }

    /// Of `journals`, those whose job no longer exists (a crash between unlinking a job and
    /// its journal), given the `<name>.<inode>` stems of jobs that do exist.
    public func orphans(among journals: Set<String>, live: Set<String>) -> [String] {
        journals.filter { !live.contains(String($0.dropFirst(stateDirectory.count + 1).dropLast(".journal".count))) }
    }

    // MARK: the daemon's lock

    /// Takes the spool's lock (an OFD lock, `F_OFD_SETLK`) for this process; nil when
    /// another process holds it. The lock lives as long as the returned descriptor stays
    /// open. The daemon records its pid in the file; `poolctl`, holding it for a moment
    /// while no daemon runs, does not.
    public func lock(recordingPID: Bool = true) throws -> FileDescriptor? {
        let fd = try FileDescriptor.open(lockPath, O_RDWR | O_CREAT, mode: 0o644)
        guard try fd.tryLockExclusive() else {
            fd.close()
            return nil
        }
        if recordingPID {
            try fd.truncate(to: 0)
            try fd.writeAll(Array("\(getpid())\n".utf8))
        }
        return fd
    }

    /// The pid of the daemon serving this spool, or nil when none is.
    public func daemonPID() -> Int32? {
        guard let fd = try? FileDescriptor.open(lockPath, O_RDONLY) else { return nil }
        defer { fd.close() }
        guard (try? fd.isLockedElsewhere()) == true else { return nil }
        let text = (try? FileSystem.readAll(lockPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
