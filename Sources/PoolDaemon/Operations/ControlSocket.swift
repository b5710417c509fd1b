// The daemon's control socket: a Unix stream socket (mode 0660) where poolctl sends one
// command line and reads the answer. The peer's credentials come from SO_PEERCRED: root,
// the daemon's own user and members of its group may talk to it; anyone else is refused.
// Every accepted command that changes something is logged with the peer's uid and pid.
// One connection at a time, each with a 5-second deadline: a stuck client cannot hold it.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import Synchronization

struct ControlPeer: Sendable, CustomStringConvertible {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
    var description: String { "uid \(uid) pid \(pid)" }
}

final class ControlSocket: Sendable {
    let path: String
    private let fd: Int32
    private let stopped = Atomic<Bool>(false)
    static let maxRequest = 4096
    static let deadline: Int32 = 5000  // ms

    /// Binds the socket (replacing a stale one left by a crash) with mode 0660.
    init(path: String) throws {
        self.path = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ControlError("control socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        unlink(path)
        let oldMask = umask(0o117)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        guard rc == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ControlError("cannot listen on \(path): \(reason)")
        }
        chmod(path, 0o660)
        self.fd = fd
    }

    deinit {
        close(fd)
        unlink(path)
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    /// Serves until `stop()`: `handle` gets the command line and the peer, returns the answer.
    func run(_ handle: (String, ControlPeer) -> String) {
        while !stopped.load(ordering: .relaxed) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 1000) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            defer { close(client) }
            var timeout = timeval(tv_sec: Int(ControlSocket.deadline / 1000), tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard let peer = ControlSocket.credentials(client) else { continue }
            guard let line = ControlSocket.readLine(client) else { continue }
            let answer: String
            if peer.uid == 0 || peer.uid == geteuid() || peer.gid == getegid() {
                answer = handle(line, peer)
            } else {
                Log.warning("control: refused \(peer): not root, not uid \(geteuid()), not gid \(getegid())")
                answer = "ERR permission denied for uid \(peer.uid)\n"
            }
            let out = Array((answer.hasSuffix("\n") ? answer : answer + "\n").utf8)
            _ = out.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    /// `struct ucred` (pid, uid, gid), which Glibc hides behind _GNU_SOURCE.
    private struct PeerCredentials {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    static func credentials(_ fd: Int32) -> ControlPeer? {
        var cred = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0, length == 12 else { return nil }
        return ControlPeer(pid: cred.pid, uid: cred.uid, gid: cred.gid)
    }

    static func readLine(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: maxRequest)
        var count = 0
        while count < maxRequest {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + count, maxRequest - count, 0) }
            if n <= 0 { break }
            count += n
            if buffer[..<count].contains(10) { break }
        }
        guard let end = buffer[..<count].firstIndex(of: 10) else { return nil }
        return String(decoding: buffer[..<end], as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }
}

struct ControlError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
