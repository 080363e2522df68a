import Foundation
import Synchronization
import ToolgateRedis

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Redis Cluster of one test's own: `masters` redis-server processes (no replicas) on loopback ports P whose
/// cluster bus port P + 10000 is free too, joined by `redis-cli --cluster create`, in a temporary directory.
/// Call `stop()` from a `defer` right after `start()`: it kills every node and removes the directory, whether the
/// test passed or not.
///
/// Everything the tests inspect goes through `redis-cli`, never through the client under test.
final class TestRedisCluster: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let redisServer = executable("redis-server")
    static let redisCLI = executable("redis-cli")
    static var available: Bool { redisServer != nil && redisCLI != nil }

    /// The nodes' client ports, in the order `--cluster create` got them (so ports[i] serves the i-th third of the
    /// slots right after `start()`).
    let ports: [Int]
    let directory: URL
    /// Immutable after init; `Process` is not Sendable, and only `stop()` (guarded by `stopped`) touches them.
    private let processes: [Int: Process]
    private let stopped = Mutex(false)

    private init(ports: [Int], directory: URL, processes: [Int: Process]) {
        self.ports = ports
        self.directory = directory
        self.processes = processes
    }

    deinit { stop() }

    // MARK: Starting and stopping

    /// Starts the nodes, joins them, and returns once every node reports `cluster_state:ok`. Ports taken between
    /// the check and redis-server's bind are retried with new ones; any other failure stops what was started and
    /// throws with the nodes' log tails.
    /// `replicas` per master: the first `masters` of `ports` are the masters, the rest their replicas, and `start`
    /// returns once every replica has synced and acknowledges (`WAIT` on each master answers).
    static func start(masters: Int = 3, replicas: Int = 0) async throws -> TestRedisCluster {
        guard let server = redisServer, let cli = redisCLI else {
            throw Failure(description: "redis-server and redis-cli must be on PATH")
        }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("toolgate-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        for attempt in 1...3 {
            let directory = base.appendingPathComponent("attempt-\(attempt)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let ports = try freePortPairs(masters * (1 + replicas))
            var processes: [Int: Process] = [:]
            for port in ports {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: server)
                process.arguments = [
                    "--port", "\(port)", "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                    "--cluster-config-file", directory.appendingPathComponent("nodes-\(port).conf").path,
                    "--save", "", "--appendonly", "no", "--dir", directory.path, "--repl-diskless-sync-delay", "0",
                    "--maxmemory-policy", "noeviction", "--logfile", directory.appendingPathComponent("redis-\(port).log").path,
                ]
                process.standardInput = FileHandle.nullDevice
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                processes[port] = process
            }
            // The directory removed at stop() is `base`, with every attempt in it.
            let cluster = TestRedisCluster(ports: ports, directory: base, processes: processes)
            do {
                for port in ports { try await cluster.waitForPong(port) }
                let create = try await run(
                    cli, ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", "\(replicas)", "--cluster-yes"],
                    timeout: .seconds(30))
                guard create.status == 0 else {
                    throw Failure(description: "redis-cli --cluster create exited with \(create.status):\n\(create.output)")
                }
                try await cluster.waitHealthy()
                if replicas > 0 { try await cluster.waitReplicated(masters: Array(ports.prefix(masters)), replicas: replicas) }
                return cluster
            } catch {
                let logs = cluster.logTails()
                cluster.stop(removing: false)
                if attempt < 3, logs.contains("Address already in use") { continue }
                try? FileManager.default.removeItem(at: base)
                throw Failure(description: "the test Redis Cluster did not start: \(error)\n\(logs)")
            }
        }
        try? FileManager.default.removeItem(at: base)
        throw Failure(description: "the test Redis Cluster did not start: its ports were taken three times")
    }

    /// Kills every node (SIGKILL: nothing is worth saving) and removes the directory. Idempotent.
    func stop() { stop(removing: true) }

    private func stop(removing: Bool) {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(5)
        for process in processes.values {
            while process.isRunning, ContinuousClock.now < deadline { usleep(2_000) }
        }
        if removing { try? FileManager.default.removeItem(at: directory) }
    }

    /// Generous: the rest of the suite runs in parallel, and a loaded 2-core machine can take seconds to spawn
    /// redis-cli (a CI run once needed more than 10 s).
    private func waitForPong(_ port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let process = processes[port], !process.isRunning {
                throw Failure(description: "redis-server on \(port) exited with \(process.terminationStatus)")
            }
            if (try? await cli(port, "PING")) == "PONG" { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(description: "redis-server on \(port) did not answer PING within 30 s")
    }

    /// Every node says `cluster_state:ok` and knows every other node, and all agree on who owns which slot.
    func waitHealthy(timeout: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while ContinuousClock.now < deadline {
            var healthy = true
            var tables: [[SlotRange]] = []
            for port in ports {
                let info = (try? await cli(port, "CLUSTER", "INFO")) ?? ""
                if !info.contains("cluster_state:ok") || !info.contains("cluster_known_nodes:\(ports.count)") {
                    healthy = false
                    last = "\(port): \(info)"
                    break
                }
                tables.append(try await slotTable(asSeenBy: port))
            }
            if healthy, tables.allSatisfy({ $0 == tables[0] }) { return }
            if healthy { last = "the nodes disagree on the slot owners: \(tables)" }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(description: "the cluster was not healthy within \(timeout): \(last)")
    }

    /// Each master's replicas synced and answering `WAIT` (a replica just past its first sync may not, for a moment).
    func waitReplicated(masters: [Int], replicas: Int, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        for master in masters {
            while (try? await cli(master, "WAIT", "\(replicas)", "100")) != "\(replicas)" {
                guard ContinuousClock.now < deadline else {
                    throw Failure(description: "the replicas of \(master) did not sync within \(timeout)")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The ports of `master`'s replicas, from `CLUSTER NODES`.
    func replicaPorts(of master: Int) async throws -> [Int] {
        let id = try await nodeID(master)
        let text = try await cli(master, "CLUSTER", "NODES")
        return text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 4, fields[3] == id, fields[2].split(separator: ",").contains("slave"),
                let address = fields[1].split(separator: "@").first, let colon = address.lastIndex(of: ":")
            else { return nil }
            return Int(address[address.index(after: colon)...])
        }
    }

    /// SIGKILL to one node.
    func killNode(_ port: Int) {
        guard let process = processes[port], process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    // MARK: Talking to nodes

    func url(_ port: Int) -> RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    /// `redis-cli -p <port> <arguments>` (raw output, trailing newline removed). An error reply throws.
    func cli(_ port: Int, _ arguments: [String]) async throws -> String {
        let result = try await Self.run(Self.redisCLI!, ["-e", "-p", "\(port)"] + arguments, timeout: .seconds(20))
        guard result.status == 0 else {
            throw Failure(description: "redis-cli -p \(port) \(arguments.joined(separator: " ")): \(result.output)")
        }
        return result.output.hasSuffix("\n") ? String(result.output.dropLast()) : result.output
    }

    func cli(_ port: Int, _ arguments: String...) async throws -> String { try await cli(port, arguments) }

    /// The integer a command answered.
    func integer(_ port: Int, _ arguments: String...) async throws -> Int {
        let text = try await cli(port, arguments)
        guard let value = Int(text) else { throw Failure(description: "\(arguments.joined(separator: " ")) on \(port) answered \(text)") }
        return value
    }

    func nodeID(_ port: Int) async throws -> String { try await cli(port, "CLUSTER", "MYID") }

    func nodeIDs() async throws -> [Int: String] {
        var ids: [Int: String] = [:]
        for port in ports { ids[port] = try await nodeID(port) }
        return ids
    }

    /// Keys that `port` holds in `slot`.
    func keys(inSlot slot: Int, on port: Int) async throws -> [String] {
        try await cli(port, "CLUSTER", "GETKEYSINSLOT", "\(slot)", "1000").split(separator: "\n").map(String.init)
    }

    /// A counter `INFO <section>` shows, e.g. `errorstat_ASK` `count`, or `cmdstat_asking` `calls`; 0 when absent.
    func stat(_ port: Int, section: String, line name: String, field: String) async throws -> Int {
        let text = try await cli(port, "INFO", section)
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(name + ":") {
            for pair in line.dropFirst(name.count + 1).split(separator: ",") {
                let parts = pair.split(separator: "=")
                if parts.count == 2, parts[0] == field { return Int(parts[1]) ?? 0 }
            }
        }
        return 0
    }

    // MARK: Slots

    struct SlotRange: Equatable, CustomStringConvertible {
        let slots: ClosedRange<Int>
        let port: Int
        var description: String { "\(slots.lowerBound)-\(slots.upperBound)@\(port)" }
    }

    /// Slot ranges and their masters' ports, from `CLUSTER NODES` on `port` (migration markers left out).
    func slotTable(asSeenBy port: Int? = nil) async throws -> [SlotRange] {
        let text = try await cli(port ?? ports[0], "CLUSTER", "NODES")
        var table: [SlotRange] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ")
            guard fields.count >= 8, fields[2].split(separator: ",").contains("master"),
                !fields[2].split(separator: ",").contains("fail"),
                let address = fields[1].split(separator: "@").first, let colon = address.lastIndex(of: ":"),
                let nodePort = Int(address[address.index(after: colon)...])
            else { continue }
            for field in fields.dropFirst(8) where !field.hasPrefix("[") {
                let bounds = field.split(separator: "-").compactMap { Int($0) }
                guard let low = bounds.first, let high = bounds.last else { continue }
                table.append(SlotRange(slots: low...high, port: nodePort))
            }
        }
        return table.sorted { $0.slots.lowerBound < $1.slots.lowerBound }
    }

    /// The port of the master that owns `slot`, as `port` (by default the first node) sees it.
    func master(forSlot slot: Int, asSeenBy port: Int? = nil) async throws -> Int {
        let table = try await slotTable(asSeenBy: port)
        guard let range = table.first(where: { $0.slots.contains(slot) }) else {
            throw Failure(description: "no master owns slot \(slot): \(table)")
        }
        return range.port
    }

    /// The first half of a hand-made migration: `to` imports `slot`, `from` migrates it. Keys stay where they are.
    func beginMigration(slot: Int, from: Int, to: Int) async throws {
        let (fromID, toID) = (try await nodeID(from), try await nodeID(to))
        _ = try await cli(to, "CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", fromID)
        _ = try await cli(from, "CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", toID)
    }

    /// MIGRATEs every key `from` holds in `slot` to `to`; returns the keys moved.
    @discardableResult
    func migrateKeys(slot: Int, from: Int, to: Int) async throws -> [String] {
        let keys = try await keys(inSlot: slot, on: from)
        if !keys.isEmpty {
            let reply = try await cli(from, ["MIGRATE", "127.0.0.1", "\(to)", "", "0", "5000", "KEYS"] + keys)
            guard reply == "OK" else { throw Failure(description: "MIGRATE of \(keys) to \(to) answered \(reply)") }
        }
        return keys
    }

    /// Ends a migration: `CLUSTER SETSLOT <slot> NODE <to>` on the new owner first, then on every other node (as
    /// `redis-cli --cluster reshard` does), so no node is left to learn it by gossip.
    func assign(slot: Int, to: Int) async throws {
        let toID = try await nodeID(to)
        for port in [to] + ports.filter({ $0 != to }) {
            _ = try await cli(port, "CLUSTER", "SETSLOT", "\(slot)", "NODE", toID)
        }
    }

    /// A whole move of one slot: begin, migrate its keys, assign.
    func moveSlot(_ slot: Int, from: Int, to: Int) async throws {
        try await beginMigration(slot: slot, from: from, to: to)
        try await migrateKeys(slot: slot, from: from, to: to)
        try await assign(slot: slot, to: to)
    }

    // MARK: Diagnostics

    /// The last lines of every node's log, for failure messages.
    func logTails(lines: Int = 15) -> String {
        let files = (try? FileManager.default.subpathsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".log") }.sorted().map { file in
            let text = (try? String(contentsOfFile: directory.appendingPathComponent(file).path, encoding: .utf8)) ?? ""
            let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
            return "--- \(file)\n\(tail)"
        }.joined(separator: "\n")
    }

    // MARK: Processes and ports

    /// Runs a short-lived command, stdout and stderr together. Waits without blocking a concurrency thread
    /// (the output is read on a thread of its own); kills the process after `timeout`.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        final class Output: Sendable { let data = Mutex<Data?>(nil) }
        let output = Output()
        try process.run()
        let reader = pipe.fileHandleForReading
        Thread.detachNewThread {
            let data = reader.readDataToEndOfFile()
            output.data.withLock { $0 = data }
        }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning || output.data.withLock({ $0 == nil }) {
            if ContinuousClock.now > deadline {
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                throw Failure(description: "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        let data = output.data.withLock { $0 } ?? Data()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func executable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `count` distinct ports P, with P and P + 10000 both bindable on 127.0.0.1 and, where possible, both outside
    /// the kernel's ephemeral range (so no outgoing connection takes one between this check and redis-server's bind).
    static func freePortPairs(_ count: Int) throws -> [Int] {
        var ephemeral = 32_768...60_999
        if let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) {
            let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
            if bounds.count == 2, bounds[0] <= bounds[1] { ephemeral = bounds[0]...bounds[1] }
        }
        let preferred = (20_000...55_535).filter { !ephemeral.contains($0) && !ephemeral.contains($0 + 10_000) }
        let pool = preferred.count >= 200 ? preferred : Array(20_000...55_535)
        var chosen: [Int] = []
        var taken: Set<Int> = []
        for _ in 0..<5_000 {
            let port = pool.randomElement()!
            guard !taken.contains(port), !taken.contains(port + 10_000), bindable(port), bindable(port + 10_000) else { continue }
            chosen.append(port)
            taken.formUnion([port, port + 10_000])
            if chosen.count == count { return chosen }
        }
        throw Failure(description: "could not find \(count) free port pairs (P, P + 10000) on 127.0.0.1")
    }

    static func bindable(_ port: Int) -> Bool {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
