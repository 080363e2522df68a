import ToolgateCore
#if canImport(Glibc)
import Glibc
#endif

extension FuzzTarget {
    /// A request body as an agent sends it. Whatever parses must survive a write and a re-read unchanged (the
    /// relay re-serializes filtered answers), and any `tools/call` in it is evaluated against a policy whose
    /// rules use every operator, algorithm and scope (the policy-json corpus's `all-operators.json`).
    static let jsonRPC = FuzzTarget(name: "jsonrpc", summary: "JSON-RPC messages and batches, JSON round trip, evaluation", run: { input in
        let bytes = Array(input)
        if let value = try? JSONParser.parse(bytes) {
            let written = JSONWriter.bytes(value)
            guard let again = try? JSONParser.parse(written) else {
                violated("jsonrpc", "the writer's output does not parse: \(JSONWriter.string(value))")
            }
            guard again == value else { violated("jsonrpc", "a round trip changed the value: \(JSONWriter.string(value))") }
            guard JSONWriter.bytes(again) == written else { violated("jsonrpc", "writing is not stable: \(JSONWriter.string(value))") }
        }
        let messages: [JSONRPCMessage]
        switch try? JSONRPCBody.parse(bytes) {
        case .single(let message): messages = [message]
        case .batch(let batch): messages = batch
        case nil: return
        }
        for message in messages where message.known == .toolsCall {
            _ = MCPHeaderCheck.mismatch(methodHeader: "tools/call", nameHeader: "=?base64?eA==?=", message: message, era: .perRequest)
            guard let call = try? message.toolCall() else { continue }
            _ = evaluator.evaluate(call, identity: Identity(grant: "fuzz", session: "s", agent: "a"))
        }
    }, setUp: { _ = evaluator })

    private static let evaluator: Evaluator = {
        let file = String(#filePath.dropLast("Targets/JSONRPCFuzz.swift".count)) + "Corpus/policy-json/all-operators.json"
        guard let bytes = FuzzCommand.read(file) else { violated("jsonrpc", "cannot read \(file)") }
        do {
            return Evaluator(policy: try Policy.parse(bytes, file: file))
        } catch {
            violated("jsonrpc", "\(error)")
        }
    }()
}
