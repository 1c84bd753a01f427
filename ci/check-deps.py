"""The workspace dependency rules (ARCHITECTURE.md), over `cargo metadata` on stdin."""
import json, os, sys
meta = json.load(sys.stdin)
root = meta["workspace_root"]
folder = {p["name"]: os.path.relpath(os.path.dirname(p["manifest_path"]), root) for p in meta["packages"]}
def group(name):
    f = folder[name]
    if f.startswith("sdk/crates/"): return "contract"
    if f.startswith("crates/"): return "lib"
    if f == "supervisor/testkit": return "testkit"
    if f == "supervisor/daemon": return "daemon"
    if f in ("supervisor/lxc", "supervisor/store"): return "leaf"
    if f.startswith("supervisor/"): return "supervisor"
    if f in ("init", "container-runtime"): return "static"
    return "tool"  # sdk/cli, imager
allowed = {
    "contract": {"contract"},
    "lib": {"contract", "lib"},
    "static": {"contract", "lib"},
    "leaf": {"contract", "lib"},
    "supervisor": {"contract", "lib", "leaf", "supervisor"},
    "daemon": {"contract", "lib", "leaf", "supervisor"},
    "testkit": {"contract", "lib", "leaf"},
    "tool": {"contract", "lib"},
}
bad = []
for p in meta["packages"]:
    me = group(p["name"])
    for d in p["dependencies"]:
        if d["name"] not in folder:
            continue
        ok = allowed[me]
        if d["kind"] == "dev" and me != "contract":
            ok = ok | {"testkit"}  # tests may use the fakes (contract crates may not)
        if group(d["name"]) not in ok:
            bad.append(f"{p['name']} ({folder[p['name']]}) -> {d['name']} ({folder[d['name']]}, {d['kind'] or 'normal'})")
if bad:
    print("dependency rules broken (ARCHITECTURE.md):", *bad, sep="\n  ")
    sys.exit(1)
print(f"dependency rules hold for {len(folder)} crates")
