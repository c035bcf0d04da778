import re, os, sys, itertools
root='src'
mods={}
for dp,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f); rel=os.path.relpath(p,root)
        top=rel.split('/')[0].replace('.rs','')
        if top=='main': continue
        text=open(p).read()
        # strip test modules
        i=text.find('#[cfg(test)]')
        if i>=0: text=text[:i]
        uses=set(re.findall(r'crate::([a-z_]+)', text))
        if top in ('api','store'):
            uses|=set()  # submodules referencing super
        mods.setdefault(top,set()).update(u for u in uses if u!=top)
# find cycles
import collections
def cycles():
    res=[]
    for a in mods:
        for b in mods[a]:
            if b in mods and a in reach(b): res.append((a,b))
    return res
def reach(s):
    seen=set([s]); st=[s]
    while st:
        x=st.pop()
        for y in mods.get(x,()):
            if y not in seen: seen.add(y); st.append(y)
    return seen
for m in sorted(mods): print(m,'->',' '.join(sorted(mods[m])))
c=cycles()
print('cycles:', c if c else 'none')
