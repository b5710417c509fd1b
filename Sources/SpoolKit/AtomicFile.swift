// Writing a file so that no reader ever sees it half-written: write under a temporary name
// in the same directory (one that never ends in `.MAIL`, so the daemon ignores it), fsync
// it, rename it into place, fsync the directory. After a crash the file is either whole
// under its final name or absent (a stray `.tmp.*` may remain; `AtomicFile.sweep` removes
// old ones).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import Synchronization

public enum AtomicFile {
    private static let counter = Atomic<Int>(0)
    static let temporaryPrefix = ".tmp."

    /// A temporary path in `directory` unique to this process and call.
    static func temporaryPath(in directory: String, for name: String) -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return "\(directory)/\(temporaryPrefix)\(getpid()).\(n).\(name).part"
    }

    /// Writes `produce`'s bytes to `directory/name` atomically and durably.
    /// `replace: false` fails with EEXIST instead of replacing an existing file.
    public static func write(directory: String, name: String, mode: mode_t = 0o640, replace: Bool = true,
                             sync: Bool = true,
                             _ produce: (FileDescriptor) throws -> Void) throws {
        let temporary = temporaryPath(in: directory, for: name)
        let fd = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        do {
            try produce(fd)
            if sync { try fd.sync() }
            fd.close()
            if replace {
                try FileSystem.rename(temporary, "\(directory)/\(name)")
            } else {
                try FileSystem.link(temporary, "\(directory)/\(name)")
                try FileSystem.unlink(temporary)
            }
            if sync { try FileSystem.syncDirectory(directory) }
        } catch {
            fd.close()
            try? FileSystem.unlink(temporary, missingOK: true)
            throw error
        }
    }

    public static func write(directory: String, name: String, bytes: [UInt8], mode: mode_t = 0o640,
                             replace: Bool = true, sync: Bool = true) throws {
        try write(directory: directory, name: name, mode: mode, replace: replace, sync: sync) { fd in
            try fd.writeAll(bytes)
        }
    }

    /// Removes temporary files older than `age` seconds left in `directory` by a crash.
    public static func sweep(directory: String, olderThan age: Double, now: Double) {
        guard let names = try? FileSystem.names(in: directory) else { return }
        for name in names where name.hasPrefix(temporaryPrefix) {
            let path = "\(directory)/\(name)"
            if let st = try? FileSystem.status(path), now - st.modified > age {
                try? FileSystem.unlink(path, missingOK: true)
            }
        }
    }
}
