// The spool directory and the daemon's places in it (see README.md in this folder for
// what is on disk at each step). Every move a job makes between places is here.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation

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

    // MARK: moves

    /// Moves a file that is not valid BSMTP to `bad/`, the reason written first.
    public func quarantine(path: String, name: String, reason: String) throws {
        let why = reason.hasSuffix("\n") ? reason : reason + "\n"
        try AtomicFile.write(directory: badDirectory, name: name + ".why", bytes: Array(why.utf8))
        try FileSystem.rename(path, badDirectory + "/" + name)
        try FileSystem.syncDirectory(badDirectory)
        try FileSystem.syncDirectory(directory(of: path))
    }

    /// Moves a job from the spool to `deferred/`; returns its new path.
    public func moveToDeferred(path: String, name: String) throws -> String {
        let target = deferredDirectory + "/" + name
        if path == target { return path }
        try FileSystem.rename(path, target)
        try FileSystem.syncDirectory(deferredDirectory)
        try FileSystem.syncDirectory(directory(of: path))
        return target
    }

    /// Moves a job to `hold/` (`poolctl hold`); its journal stays valid (same inode).
    public func hold(path: String, name: String) throws {
        try FileSystem.rename(path, holdDirectory + "/" + name)
        try FileSystem.syncDirectory(holdDirectory)
        try FileSystem.syncDirectory(directory(of: path))
    }

    /// Moves a held job (or a fixed bad one) back into the spool without replacing a job
    /// of the same name; returns its path there.
    public func bringBack(from directory: String, name: String) throws -> String {
        let target = root + "/" + name
        try FileSystem.link(directory + "/" + name, target)
        try FileSystem.unlink(directory + "/" + name)
        try FileSystem.syncDirectory(root)
        try FileSystem.syncDirectory(directory)
        return target
    }

    /// Removes a finished job, then its journal. The directory is not fsynced: after a
    /// power loss a finished job may come back and be sent again (a duplicate, never a
    /// loss), and the daemon saves an fsync per job, which on a busy spool is most of its
    /// disk time. Postfix removes its queue files the same way.
    public func finish(path: String, journal: String?) throws {
        try FileSystem.unlink(path, missingOK: true)
        if let journal { try FileSystem.unlink(journal, missingOK: true) }
    }

    public func journalPath(for name: String, inode: UInt64) -> String {
        "\(stateDirectory)/\(name).\(inode).journal"
    }

    func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The journal files in `.state/` (full paths).
    public func journals() -> Set<String> {
        Set(((try? FileSystem.names(in: stateDirectory)) ?? []).filter { $0.hasSuffix(".journal") }.map { stateDirectory + "/" + $0 })
    }

    /// Of `journals`, those whose job no longer exists (a crash between unlinking a job and
    /// its journal), given the `<name>.<inode>` stems of jobs that do exist.
    public func orphans(among journals: Set<String>, live: Set<String>) -> [String] {
        journals.filter { !live.contains(String($0.dropFirst(stateDirectory.count + 1).dropLast(".journal".count))) }
    }

    // MARK: the daemon's lock

    /// Takes the spool's lock for this process; nil when another process holds it.
    /// The lock lives as long as the returned descriptor stays open.
    public func lock() throws -> FileDescriptor? {
        let fd = try FileDescriptor.open(lockPath, O_RDWR | O_CREAT, mode: 0o644)
        guard try fd.tryLockExclusive() else {
            fd.close()
            return nil
        }
        try fd.truncate(to: 0)
        try fd.writeAll(Array("\(getpid())\n".utf8))
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
