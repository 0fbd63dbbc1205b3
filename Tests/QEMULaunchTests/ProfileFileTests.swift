import Foundation
import QMP
import Testing

@testable import QEMULaunch

/// Every `*.json` profile under Profiles/ and Examples/ (not the schema), relative to the package root.
let profileFiles: [String] = {
    var found: [String] = []
    for folder in ["Profiles", "Examples"] {
        let base = packageRoot.appendingPathComponent(folder)
        guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { continue }
        for case let url as URL in walker {
            // An example package's build folder holds its dependencies' JSON, not profiles.
            if url.lastPathComponent.hasPrefix(".build") { walker.skipDescendants(); continue }
            guard url.pathExtension == "json", url.lastPathComponent != "profile.schema.json" else { continue }
            found.append(String(url.standardizedFileURL.path.dropFirst(packageRoot.standardizedFileURL.path.count + 1)))
        }
    }
    return found.sorted()
}()

let schemaURL = packageRoot.appendingPathComponent("Profiles/profile.schema.json")

@Suite("Profile files and Profiles/profile.schema.json agree with the decoder")
struct ProfileFileTests {
    /// Sets every key the schema declares, at every level, to a valid value.
    static let everyKeyProfile = """
        {
          "$schema": "./profile.schema.json",
          "name": "everything", "arch": "x86_64", "machine": "q35", "accel": "tcg", "cpus": 2, "memory": "1G",
          "kernel": "auto", "initrd": "initrd.img", "cmdline": "quiet",
          "shares": [{"tag": "src", "path": "src", "guestPath": "/src", "readOnly": true, "transport": "9p"}],
          "disks": [{"path": "disk.img", "format": "qcow2", "readOnly": false, "ephemeral": true, "overlay": "none"}],
          "network": {"mode": "user", "forwards": [{"host": 2222, "guest": 22, "protocol": "tcp", "address": "0.0.0.0"}]},
          "command": ["uname", "-r"], "firmware": "none", "onReboot": "exit", "transport": "pci", "consoles": ["agent"], "cpu": "max", "lockMemory": true,
          "runtimeDir": "/tmp",
          "qemu": {"binary": "qemu-system-x86_64", "extraArgs": ["-d", "guest_errors"]},
          "virtiofsd": {"binary": "virtiofsd", "extraArgs": ["--log-level=debug"], "cache": "never"},
          "timeouts": {"boot": "60s", "run": 120, "shutdown": "500ms"},
          "guestKit": {"busybox": "busybox-arm64", "modules": "modules"},
          "rootfs": {"path": "host", "rwdirs": ["/tmp"], "overlay": true, "transport": "9p"},
          "ready": {"port": 22, "banner": "SSH-2.0"}, "ssh": {"port": 22, "user": "root", "key": "id_ed25519"}
        }
        """

    /// Keys the every-key profile can't set together with the others: `rootfs.disk` excludes
    /// `rootfs.path` (checked on its own by `rootfsDiskDecodes`); `ready.console` excludes `ready.port`.
    static let exclusiveKeys: Set<String> = ["rootfs.disk", "ready.console"]

    let schema: SchemaValidator

    init() throws {
        schema = try SchemaValidator(contentsOf: schemaURL)
    }

    @Test("the profile files exist: hello, q35, pc, boot, arm64 and the 9p example")
    func filesFound() {
        #expect(Set(profileFiles).isSuperset(of: [
            "Profiles/hello.json", "Profiles/q35.json", "Profiles/pc.json", "Profiles/boot.json",
            "Profiles/arm64.json", "Examples/profiles/ninep.json",
        ]))
    }

    @Test("each profile file decodes with Profile.load and matches the schema", arguments: profileFiles)
    func profileFileIsValid(_ relativePath: String) throws {
        let url = packageRoot.appendingPathComponent(relativePath)
        do {
            _ = try Profile.load(contentsOf: url)
        } catch {
            Issue.record("\(error)")
        }
        let errors = schema.errors(try QMP.JSONValue(parsing: Data(contentsOf: url)))
        #expect(errors == [], "\(relativePath) does not match the schema")
    }

    @Test("a profile file's $schema, when it has one, points at the schema file", arguments: profileFiles)
    func schemaReference(_ relativePath: String) throws {
        let url = packageRoot.appendingPathComponent(relativePath)
        let json = try QMP.JSONValue(parsing: Data(contentsOf: url))
        guard let reference = json["$schema"]?.stringValue else { return }
        let target = url.deletingLastPathComponent().appendingPathComponent(reference).standardizedFileURL
        #expect(target == schemaURL.standardizedFileURL)
    }

    @Test("the schema's top-level properties are exactly the keys the decoder accepts")
    func topLevelKeysMatchDecoder() throws {
        let properties = try #require(schema.root["properties"]?.objectValue)
        #expect(Set(properties.keys) == Set(Profile.keys))
        #expect(schema.root["required"] == ["name"])
    }

    @Test("the every-key profile decodes cleanly, matches the schema, and sets every property the schema declares")
    func everyKeyProfileCoversSchema() throws {
        let json = try QMP.JSONValue(parsing: Self.everyKeyProfile)
        #expect(schema.errors(json) == [])
        #expect(decodeProblems(Self.everyKeyProfile) == [])
        // Together with decoding cleanly, this proves the decoder accepts every key the schema names.
        #expect(SchemaValidator.keyPaths(json).union(Self.exclusiveKeys) == schema.propertyPaths())
    }

    @Test("rootfs takes \"host\", a folder, {\"disk\": N} or {\"path\": ...}; path and disk together are a problem")
    func rootfsDiskDecodes() throws {
        #expect(try profile(#"{"name": "r", "rootfs": {"disk": 1}}"#).rootfs == Profile.RootFS(.disk(1)))
        #expect(try profile(#"{"name": "r", "rootfs": "host"}"#).rootfs == Profile.RootFS(.host))
        #expect(try profile(#"{"name": "r", "rootfs": "/srv/root"}"#).rootfs == Profile.RootFS(.folder("/srv/root")))
        #expect(decodeProblems(#"{"name": "r", "rootfs": {"path": "host", "disk": 0}}"#).map(\.path) == ["rootfs"])
        for text in [#"{"name": "r", "rootfs": {"disk": 1}}"#, #"{"name": "r", "rootfs": {"path": "host", "overlay": true}}"#] {
            let decoded = try profile(text)
            let again = try JSONDecoder().decode(Profile.self, from: try JSONEncoder().encode(decoded))
            #expect(again == decoded)
            #expect(schema.errors(try QMP.JSONValue(parsing: try JSONEncoder().encode(decoded))) == [])
        }
    }

    @Test("a profile with every field set encodes to JSON the schema accepts (the schema names every key the decoder reads)")
    func encodedProfileMatchesSchema() throws {
        var p = try profile(Self.everyKeyProfile)
        p.firmware = .uefi
        p.onReboot = .reboot
        p.shares.append(Profile.Share(tag: "b", path: "b", guestPath: "/b", readOnly: false, transport: .virtiofs))
        p.timeouts.run = TimeLimit(.milliseconds(1500))
        let data = try JSONEncoder().encode(p)
        let json = try QMP.JSONValue(parsing: data)
        #expect(schema.errors(json) == [])
        var withSchemaKey = SchemaValidator.keyPaths(json)
        withSchemaKey.insert("$schema")
        withSchemaKey.formUnion(Self.exclusiveKeys)
        #expect(withSchemaKey == schema.propertyPaths(), "the encoder writes a key the schema lacks, or leaves one out")
    }

    @Test("every object in the schema forbids additional properties")
    func closedObjects() throws {
        var open: [String] = []
        func walk(_ node: QMP.JSONValue, _ at: String) {
            guard let members = node.objectValue else { return }
            if members["type"] == "object" && members["additionalProperties"] != false { open.append(at) }
            for (key, value) in members where key == "properties" || key == "$defs" {
                for (name, sub) in value.objectValue ?? [:] { walk(sub, "\(at)/\(key)/\(name)") }
            }
            if let items = members["items"] { walk(items, "\(at)/items") }
        }
        walk(schema.root, "#")
        #expect(open == [])
    }

    @Test("every property in the schema has a description (they are the profile reference)")
    func everythingDescribed() throws {
        var missing: [String] = []
        func walk(_ node: QMP.JSONValue, _ at: String) {
            for (key, value) in node.objectValue ?? [:] where key == "properties" || key == "$defs" {
                for (name, sub) in value.objectValue ?? [:] {
                    if sub["description"]?.stringValue?.isEmpty != false { missing.append("\(at)/\(key)/\(name)") }
                    walk(sub, "\(at)/\(key)/\(name)")
                }
            }
        }
        walk(schema.root, "#")
        #expect(missing == [])
    }

    @Test("the schema is draft 2020-12 and uses only keywords the test validator checks")
    func schemaKeywords() {
        #expect(schema.root["$schema"] == "https://json-schema.org/draft/2020-12/schema")
        #expect(schema.unsupportedKeywords() == [])
    }

    @Test("the schema's enums list exactly the decoder's choices")
    func enumsMatchDecoder() throws {
        func choices(_ path: [String]) -> Set<String> {
            var node: QMP.JSONValue? = schema.root
            for part in path { node = node?[part] }
            return Set(node?["enum"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        #expect(choices(["properties", "arch"]) == Set(Profile.Arch.allCases.map(\.rawValue)))
        #expect(choices(["properties", "machine"]) == Set(Profile.MachineKind.allCases.map(\.rawValue)))
        #expect(choices(["properties", "accel"]) == Set(Profile.AccelChoice.allCases.map(\.rawValue)))
        #expect(choices(["properties", "firmware"]) == Set(Profile.Firmware.allCases.map(\.rawValue)))
        #expect(choices(["properties", "transport"]) == Set(Profile.TransportChoice.allCases.map(\.rawValue)))
        #expect(choices(["$defs", "share", "properties", "transport"]) == Set(Profile.ShareTransport.allCases.map(\.rawValue)))
        #expect(choices(["$defs", "disk", "properties", "format"]) == Set(Profile.DiskFormat.allCases.map(\.rawValue)))
        #expect(choices(["$defs", "disk", "properties", "overlay"]) == Set(Profile.DiskOverlay.allCases.map(\.rawValue)))
        #expect(choices(["$defs", "network", "properties", "mode"]) == Set(Profile.NetworkMode.allCases.map(\.rawValue)))
        #expect(choices(["$defs", "forward", "properties", "protocol"]) == Set(Profile.ForwardProtocol.allCases.map(\.rawValue)))
        #expect(choices(["$defs", "virtiofsd", "properties", "cache"]) == Set(Profile.VirtiofsCache.allCases.map(\.rawValue)))
    }

    @Test("the schema's size pattern accepts exactly what MemorySize parses",
          arguments: ["512M", "2G", "1024", "2GiB", "2gb", "64k", "1T", "8MB", "1536mib",
                      "12X", "1.5G", "", "M", "-1M", "512 M", "2 GB", "1BB", "0x10M"])
    func sizePatternMatchesParser(_ text: String) throws {
        let sizeSchema = try #require(schema.root["properties"]?["memory"])
        let schemaAccepts = SchemaValidator(sizeSchema).errors(.string(text)).isEmpty
        #expect(schemaAccepts == (MemorySize(parsing: text) != nil))
    }

    @Test("the schema's duration pattern accepts exactly what TimeLimit parses",
          arguments: ["30s", "500ms", "10m", "1h", "2min", "90", "1.5m", ".5s", "1.s", "30S", "0",
                      "10d", "-5s", "", "s", "1.2.3s", "30 s", "1e3s", "ms5", "nan"])
    func durationPatternMatchesParser(_ text: String) throws {
        let durationSchema = try #require(schema.root["$defs"]?["duration"])
        let schemaAccepts = SchemaValidator(durationSchema).errors(.string(text)).isEmpty
        #expect(schemaAccepts == (TimeLimit(parsing: text) != nil))
    }

    @Test("the schema refuses what the decoder refuses", arguments: [
        #"{"name": "x", "memroy": "1G"}"#,
        #"{"name": "x", "shares": [{"tag": "a", "path": "/", "readonly": true}]}"#,
        #"{"name": "x", "machine": "q36"}"#,
        #"{"name": "x", "memory": "12X"}"#,
        #"{"name": "x", "cpus": "2"}"#,
        #"{"name": "x", "cpus": 1.5}"#,
        #"{"name": "x", "timeouts": {"boot": "10d"}}"#,
        #"{"name": "x", "timeouts": {"run": -1}}"#,
        #"{"name": "x", "command": "uname -r"}"#,
        #"{"name": "x", "disks": [{"format": "raw"}]}"#,
        #"{"name": "x", "network": {"forwards": [{"host": 1}]}}"#,
        #"{"name": "x", "qemu": {"args": []}}"#,
        #"{"kernel": "auto"}"#,
        #"["name"]"#,
    ])
    func schemaRefusesBadProfiles(_ json: String) throws {
        #expect(decodeProblems(json) != [])
        #expect(schema.errors(try QMP.JSONValue(parsing: json)) != [])
    }

    @Test("the schema also states validation rules: names, CPUs, ports, tags, guest paths, console names", arguments: [
        #"{"name": "my vm"}"#,
        #"{"name": "x", "cpus": 0}"#,
        #"{"name": "x", "memory": 16}"#,
        #"{"name": "x", "network": {"mode": "user", "forwards": [{"host": 70000, "guest": 22}]}}"#,
        #"{"name": "x", "shares": [{"tag": "", "path": "/"}]}"#,
        #"{"name": "x", "shares": [{"tag": "a", "path": "/", "guestPath": "mnt"}]}"#,
        #"{"name": "x", "consoles": ["launch.stdout"]}"#,
        #"{"name": "x", "consoles": ["bad name"]}"#,
        #"{"name": "x", "command": []}"#,
    ])
    func schemaStatesHostRules(_ json: String) throws {
        #expect(decodeProblems(json) == [], "the decoder leaves this to ProfileValidator")
        #expect(schema.errors(try QMP.JSONValue(parsing: json)) != [])
    }
}

@Suite("Relative paths in a profile resolve against the profile's folder")
struct RelativePathTests {
    @Test("kernel, initrd, shares, disks, runtimeDir, the ssh key and binaries with a slash become absolute under the profile's folder")
    func loadResolvesAgainstProfileFolder() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        _ = dir.file("boot/vmlinuz")
        _ = dir.file("initrd.img")
        _ = dir.folder("shared")
        _ = dir.file("disk.img")
        _ = dir.folder("run")
        let url = URL(fileURLWithPath: dir.file("profiles/p.json", contents: """
            {"name": "rel", "kernel": "../boot/vmlinuz", "initrd": "../initrd.img",
             "shares": [{"tag": "s", "path": "../shared", "transport": "9p"}], "disks": [{"path": "../disk.img"}],
             "runtimeDir": "../run", "qemu": {"binary": "./bin/qemu-system-x86_64"}, "virtiofsd": {"binary": "virtiofsd"},
             "network": {"mode": "user", "forwards": [{"host": 2222, "guest": 22}]}, "ssh": {"key": "../keys/id_ed25519"}}
            """))
        let p = try Profile.load(contentsOf: url)
        #expect(p.kernel == "\(dir.path)/boot/vmlinuz")
        #expect(p.initrd == "\(dir.path)/initrd.img")
        #expect(p.shares.map(\.path) == ["\(dir.path)/shared"])
        #expect(p.disks.map(\.path) == ["\(dir.path)/disk.img"])
        #expect(p.runtimeDir == "\(dir.path)/run")
        #expect(p.qemu.binary == "\(dir.path)/profiles/bin/qemu-system-x86_64")
        #expect(p.virtiofsd.binary == "virtiofsd", "a bare name is looked up on PATH, not resolved")
        #expect(p.ssh?.key == "\(dir.path)/keys/id_ed25519")
        // The working directory is the package root, where none of these exist: they were found by the profile's folder.
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86TCG) == [])
    }

    @Test("\"auto\", absolute paths and ~ are not joined to the profile's folder")
    func specialPaths() throws {
        let home = NSString(string: "~").expandingTildeInPath
        let p = try profile("""
            {"name": "x", "kernel": "auto", "initrd": "/abs/initrd", "shares": [{"tag": "h", "path": "~/src"}],
             "disks": [{"path": "~"}]}
            """, base: "/somewhere/else")
        #expect(p.kernel == "auto")
        #expect(p.initrd == "/abs/initrd")
        #expect(p.shares[0].path == "\(home)/src")
        #expect(p.disks[0].path == home)
    }

    @Test("without a base folder, relative paths stay as written")
    func noBase() throws {
        let p = try profile(#"{"name": "x", "kernel": "vmlinuz", "shares": [{"tag": "s", "path": "src"}]}"#)
        #expect(p.kernel == "vmlinuz")
        #expect(p.shares[0].path == "src")
    }

    @Test("a relative kernel that exists only next to the profile is reported missing when the profile is decoded without its folder")
    func relativeWithoutBaseIsMissing() throws {
        let p = try profile(#"{"name": "x", "kernel": "no-such-vmlinuz-qlt"}"#)
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86TCG, runtimeDir: goldenRuntimeDir).map(\.path) == ["kernel"])
    }
}
