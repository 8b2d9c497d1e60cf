import json,sys,collections
p=json.load(open(sys.argv[1]))
nodes={n['id']:n for n in p['nodes']}
dt=collections.Counter()
samples=p['samples']; deltas=p['timeDeltas']
for s,d in zip(samples,deltas): dt[s]+=d
total=sum(dt.values())
self_by=collections.Counter(); file_by=collections.Counter()
for nid,t in dt.items():
    cf=nodes[nid]['callFrame']
    key=f"{cf['functionName'] or '(anon)'} {cf['url'].split('/')[-1]}:{cf['lineNumber']+1}"
    self_by[key]+=t
    file_by[cf['url'].replace('file:///work/main/','') or cf['functionName']]+=t
print("total ms",total/1000)
print("--- by file")
for k,v in file_by.most_common(25): print(f"{v/total*100:5.1f}% {k}")
print("--- by function (self)")
for k,v in self_by.most_common(40): print(f"{v/total*100:5.1f}% {k}")
# inclusive time per function name in our code
parent={}
for n in p['nodes']:
    for c in n.get('children',[]): parent[c]=n['id']
incl=collections.Counter()
for nid,t in dt.items():
    seen=set(); x=nid
    while x is not None:
        cf=nodes[x]['callFrame']
        key=f"{cf['functionName'] or '(anon)'} {cf['url'].split('/')[-1]}:{cf['lineNumber']+1}"
        if key not in seen: incl[key]+=t; seen.add(key)
        x=parent.get(x)
print("--- inclusive")
for k,v in incl.most_common(60): print(f"{v/total*100:5.1f}% {k}")
