// One typed layer over the file system calls the spool needs (open, read, write, fsync,
// stat, lstat, fstatat, posix_fadvise, rename, link, unlink, the spool's OFD lock through fcntl(F_OFD_SETLK), directory
// listing). For these calls EINTR is retried here and only here; every failure becomes a
// `SystemError` that names the call, the path and errno. (The other raw calls of SpoolKit
// are inotify's, in SpoolWatcher.swift: a read that fails there is read again at the next
// wake-up.)

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation

public struct SystemError: Error, Sendable, CustomStringConvertible, Equatable {
    public let call: String
    public let path: String?
    public let errno: Int32

    public init(_ call: String, path: String? = nil, errno: Int32 = Glibc.errno) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(call) \(path): \(reason)" }
        return "\(call): \(reason)"
    }

    public var isNotFound: Bool { errno == ENOENT }
    public var isExisting: Bool { errno == EEXIST }
}

/// Retries a system call while it fails with EINTR.
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let result = body()
        if result == -1 && Glibc.errno == EINTR { continue }
        return result
    }
}

/// An owned file descriptor. Not copyable in spirit: close it once.
public struct FileDescriptor: Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `open(2)`.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> FileDescriptor {
        let fd = retryingEINTR { Glibc.open(path, flags | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError("open", path: path) }
        return FileDescriptor(rawValue: fd)
    }

    /// `close(2)`; errors are ignored (the descriptor is gone either way).
    public func close() { _ = Glibc.close(rawValue) }

    /// `pread(2)` into `buffer`; returns the byte count, 0 at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        let n = retryingEINTR { Glibc.pread(rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
        guard n >= 0 else { throw SystemError("pread") }
        return n
    }

    /// `read(2)`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = retryingEINTR { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
        guard n >= 0 else { throw SystemError("read") }
        return n
    }

    /// `write(2)` until every byte is written.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = retryingEINTR { Glibc.write(rawValue, bytes.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { throw SystemError("write") }
            done += n
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll($0) }
    }

    /// `fsync(2)`.
    public func sync() throws {
        guard retryingEINTR({ Glibc.fsync(rawValue) }) == 0 else { throw SystemError("fsync") }
    }

    /// `fstat(2)`.
    public func status() throws -> FileStatus {
        var st = stat()
        guard Glibc.fstat(rawValue, &st) == 0 else { throw SystemError("fstat") }
        return FileStatus(st)
    }

    // Open-file-description locks (fcntl F_OFD_*, Linux ≥ 3.15): owned by this open file,
    // so they conflict even inside one process, and F_OFD_GETLK tests without taking.
    private static let getOFDLock: Int32 = 36, setOFDLock: Int32 = 37

    /// Takes a whole-file write lock without waiting: false when another open file holds it.
    public func tryLockExclusive() throws -> Bool {
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if retryingEINTR({ fcntl(rawValue, FileDescriptor.setOFDLock, &lock) }) == 0 { return true }
        if Glibc.errno == EAGAIN || Glibc.errno == EACCES { return false }
        throw SystemError("fcntl(F_OFD_SETLK)")
    }

    /// Is a whole-file write lock held by another open file? (Does not take it.)
    public func isLockedElsewhere() throws -> Bool {
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard retryingEINTR({ fcntl(rawValue, FileDescriptor.getOFDLock, &lock) }) == 0 else {
            throw SystemError("fcntl(F_OFD_GETLK)")
        }
        return lock.l_type != Int16(F_UNLCK)
    }

    /// `posix_fadvise(POSIX_FADV_WILLNEED)`: the kernel starts reading the file into the page
    /// cache now, without waiting for it. Only a hint: a failure is ignored.
    public func willNeed() {
        _ = posix_fadvise(rawValue, 0, 0, POSIX_FADV_WILLNEED)
    }

    /// `ftruncate(2)`.
    public func truncate(to size: Int64) throws {
        guard retryingEINTR({ Glibc.ftruncate(rawValue, off_t(size)) }) == 0 else { throw SystemError("ftruncate") }
    }
}

/// The parts of `struct stat` the spool uses.
public struct FileStatus: Sendable, Equatable {
    public var size: Int64
    public var inode: UInt64
    public var device: UInt64
    public var modified: Double  // seconds since the epoch
    /// The inode's last change (ctime), in nanoseconds since the epoch. No program can set
    /// it, so (inode, ctime) tells one file from a later one that reuses its inode number.
    public var changed: Int64
    public var isRegular: Bool
    public var isDirectory: Bool
    public var mode: UInt32

    init(_ st: stat) {
        size = Int64(st.st_size)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
        modified = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        changed = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        isRegular = (st.st_mode & S_IFMT) == S_IFREG
        isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
        mode = UInt32(st.st_mode & 0o7777)
    }
}

/// Path-level calls.
public enum FileSystem {
    /// `stat(2)`.
    public static func status(_ path: String) throws -> FileStatus {
        var st = stat()
        guard stat(path, &st) == 0 else { throw SystemError("stat", path: path) }
        return FileStatus(st)
    }

    /// `lstat(2)`: a symbolic link is reported as itself, not followed.
    public static func linkStatus(_ path: String) throws -> FileStatus {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw SystemError("lstat", path: path) }
        return FileStatus(st)
    }

    /// `fstatat(2)` of `name` in the open directory `directory` (no path to build or walk).
    public static func status(of name: String, in directory: FileDescriptor) throws -> FileStatus {
        var st = stat()
        guard fstatat(directory.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw SystemError("fstatat", path: name) }
        return FileStatus(st)
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// `rename(2)`: atomic within one file system; replaces `to` if it exists.
    public static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw SystemError("rename", path: "\(from) -> \(to)") }
    }

    /// `link(2)`: fails with EEXIST rather than replace (a rename that never overwrites).
    public static func link(_ from: String, _ to: String) throws {
        guard Glibc.link(from, to) == 0 else { throw SystemError("link", path: "\(from) -> \(to)") }
    }

    /// `unlink(2)`; a missing file is not an error when `missingOK`.
    public static func unlink(_ path: String, missingOK: Bool = false) throws {
        if Glibc.unlink(path) == 0 { return }
        if missingOK && Glibc.errno == ENOENT { return }
        throw SystemError("unlink", path: path)
    }

    /// `mkdir(2)`; an existing directory is fine.
    public static func makeDirectory(_ path: String, mode: mode_t = 0o750) throws {
        if Glibc.mkdir(path, mode) == 0 { return }
        if Glibc.errno == EEXIST, (try? status(path))?.isDirectory == true { return }
        throw SystemError("mkdir", path: path)
    }

    /// `fsync(2)` of a directory, so that a rename or unlink in it survives power loss.
    public static func syncDirectory(_ path: String) throws {
        let fd = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
        defer { fd.close() }
        try fd.sync()
    }

    /// The names in a directory (not `.` and `..`), in no particular order.
    public static func names(in directory: String) throws -> [String] {
        guard let dir = Glibc.opendir(directory) else { throw SystemError("opendir", path: directory) }
        defer { Glibc.closedir(dir) }
        var names: [String] = []
        while let entry = Glibc.readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// An entry of a directory listing: its name's bytes, its inode and whether it is a
    /// regular file (nil when the file system does not say: DT_UNKNOWN).
    public struct Entry {
        public var name: UnsafeBufferPointer<UInt8>
        public var inode: UInt64
        public var isRegular: Bool?
    }

    /// Calls `body` for each entry of a directory (not `.` and `..`), in no particular
    /// order, with the name's bytes valid only during the call: a listing of 100,000 names
    /// builds no string for names the caller skips.
    public static func forEachEntry(in directory: String, _ body: (Entry) throws -> Void) throws {
        guard let dir = Glibc.opendir(directory) else { throw SystemError("opendir", path: directory) }
        defer { Glibc.closedir(dir) }
        while let entry = Glibc.readdir(dir) {
            let inode = UInt64(entry.pointee.d_ino)
            let type = entry.pointee.d_type
            try withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
                let length = strnlen(raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
                if length == 1 && base[0] == UInt8(ascii: ".") { return }
                if length == 2 && base[0] == UInt8(ascii: ".") && base[1] == UInt8(ascii: ".") { return }
                let regular: Bool? = type == UInt8(DT_UNKNOWN) ? nil : type == UInt8(DT_REG)
                try body(Entry(name: UnsafeBufferPointer(start: base, count: length), inode: inode, isRegular: regular))
            }
        }
    }

    /// Reads a small file whole (configuration, journals, `.why` files).
    public static func readAll(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }
}
