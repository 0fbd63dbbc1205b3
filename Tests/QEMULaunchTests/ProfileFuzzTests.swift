import Foundation
import PropertyBased
import Synchronization
import Testing
import TestSupport

@testable import QEMULaunch

@Suite("Properties: mutated profiles give a valid plan or typed problems, never a crash or a hang")
struct ProfileFuzzTests {
    static var base: [String: Any] { [
        "name": "fuzz", "machine": "q35", "accel": "tcg", "cpus": 2, "memory": "512M",
        "kernel": "/tmp/qlt-golden/vmlinuz", "cmdline": "quiet",
        "shares": [["tag": "src", "path": "/tmp/qlt-golden/src", "transport": "9p"]],
        "disks": [["path": "/tmp/qlt-golden/disk.img", "format": "raw", "ephemeral": true]],
        "network": ["mode": "user", "forwards": [["host": 2222, "guest": 22]]],
        "command": ["uname", "-r"], "consoles": ["agent"],
        "timeouts": ["boot": "30s", "run": "1m", "shutdown": "5s"],
    ] }

    static let nasty: [String] = ["", " ", "a,b", "x,,y", "/tmp/a,readonly=off", "'", "\"", "\n", "$(reboot)", "é", "😀",
                                  "-1", "1e999", "512X", "auto", "../..", "/", String(repeating: "a", count: 300)]

    static func randomValue(_ g: inout SplitMix64, depth: Int = 0) -> Any {
        switch Int.random(in: 0..<(depth > 2 ? 5 : 7), using: &g) {
        case 0: return nasty.randomElement(using: &g)!
        case 1: return Int.random(in: -70000...70000, using: &g)
        case 2: return Double.random(in: -1e6...1e6, using: &g)
        case 3: return Bool.random(using: &g)
        case 4: return NSNull()
        case 5: return (0..<Int.random(in: 0...3, using: &g)).map { _ in randomValue(&g, depth: depth + 1) }
        default:
            var object: [String: Any] = [:]
            for _ in 0..<Int.random(in: 0...3, using: &g) {
                object[["tag", "path", "host", "guest", "mode", "x", "readOnly", "format"].randomElement(using: &g)!] = randomValue(&g, depth: depth + 1)
            }
            return object
        }
    }

    /// Applies 1-4 random edits somewhere in the tree.
    static func mutate(_ value: Any, _ g: inout SplitMix64, depth: Int = 0) -> Any {
        if var object = value as? [String: Any], !object.isEmpty, depth < 4 {
            let key = object.keys.sorted().randomElement(using: &g)!
            switch Int.random(in: 0..<5, using: &g) {
            case 0: object.removeValue(forKey: key)
            case 1: object[key] = randomValue(&g)
            case 2: object[key + "x"] = object.removeValue(forKey: key)
            case 3: object[nasty.randomElement(using: &g)!] = randomValue(&g)
            default: object[key] = mutate(object[key]!, &g, depth: depth + 1)
            }
            return object
        }
        if var array = value as? [Any], !array.isEmpty, depth < 4 {
            let index = Int.random(in: 0..<array.count, using: &g)
            if Bool.random(using: &g) { array[index] = mutate(array[index], &g, depth: depth + 1) } else { array.append(randomValue(&g)) }
            return array
        }
        return randomValue(&g)
    }

    @Test("a randomly mutated profile decodes to a plan or to typed problems with paths")
    func mutatedProfiles() async throws {
        #expect(GoldenFiles.ready)
        // (plans, refused plans, decode problems): the mutations must reach every outcome.
        let outcomes = Mutex<(Int, Int, Int)>((0, 0, 0))
        await propertyCheck(count: 400, input: Gen.uint64()) { seed in
            var g = SplitMix64(seed: seed)
            var tree: Any = Self.base
            for _ in 0..<Int.random(in: 1...4, using: &g) { tree = Self.mutate(tree, &g) }
            guard JSONSerialization.isValidJSONObject(tree),
                  let data = try? JSONSerialization.data(withJSONObject: tree) else { return }
            var bytes = data
            // Sometimes also cut the text short: invalid JSON must be a problem too.
            if Int.random(in: 0..<6, using: &g) == 0 { bytes = data.prefix(Int.random(in: 0...data.count, using: &g)) }
            do throws(ProfileProblems) {
                let profile = try Profile.decode(bytes, source: "seed \(seed)")
                do throws(ProfileProblems) {
                    let plan = try Planner.plan(profile, host: Hosts.x86TCG, options: PlanOptions(runtimeDir: goldenRuntimeDir))
                    #expect(plan.qemu.first?.hasSuffix("qemu-system-x86_64") == true || profile.qemu.binary != nil)
                    outcomes.withLock { $0.0 += 1 }
                } catch {
                    outcomes.withLock { $0.1 += 1 }
                    #expect(!error.problems.isEmpty, "seed \(seed): a refusal must list problems")
                    for problem in error.problems { #expect(!problem.path.isEmpty && !problem.message.isEmpty, "seed \(seed)") }
                }
            } catch {
                outcomes.withLock { $0.2 += 1 }
                #expect(!error.problems.isEmpty, "seed \(seed): a decode failure must list problems")
                for problem in error.problems { #expect(!problem.path.isEmpty && !problem.message.isEmpty, "seed \(seed)") }
            }
        }
        let (plans, refusals, decodeProblems) = outcomes.withLock { $0 }
        #expect(plans > 0 && refusals > 0 && decodeProblems > 0, "plans \(plans), refusals \(refusals), decode problems \(decodeProblems)")
    }

    @Test("random bytes as a profile file give problems, never a crash")
    func randomBytes() async {
        await propertyCheck(count: 300, input: Gen.uint8().array(of: 0...200)) { bytes in
            do throws(ProfileProblems) {
                _ = try Profile.decode(Data(bytes), source: "random")
            } catch {
                #expect(!error.problems.isEmpty)
            }
        }
    }
}
