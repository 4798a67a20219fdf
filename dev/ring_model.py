"""A model of the stream-K kernel's copy rings (kernels/hopper_streamk.cu): the copier and W consumer warps stepping
in random interleavings over random piece sequences, with mbarriers that count arrivals and flip a phase bit.

Follows run_copier and consumer_piece: weight stages of WEIGHT_GROUP k-blocks in a ring of WEIGHT_STAGES, a token
ring one weight stage deep (k-block j of a weight stage in token stage j, the stages past a piece's end completed
empty), a token stage released at the next k-block's first step and the last one after the piece. Checks that
nothing deadlocks, every read sees the k-block it expects, and no stage is refilled while a warp still reads it.
Run: python3 dev/ring_model.py (CPU only, a few seconds)."""
import random

class Bar:
    def __init__(s, count): s.count=count; s.pending=count; s.phase=0
    def arrive(s):
        s.pending-=1
        assert s.pending>=0
        if s.pending==0: s.phase^=1; s.pending=s.count
    def done(s, parity): return s.phase != parity   # phase `parity` has completed

G = 4   # WEIGHT_GROUP: k-blocks per weight stage, also the token stages
WS = 4  # WEIGHT_STAGES
W = 2   # consumer warps modelled (the kernel has 8; two already interleave their arrivals)
TS = G
def run(pieces, seed):
    rnd=random.Random(seed)
    tf=[Bar(1) for _ in range(TS)]; te=[Bar(W) for _ in range(TS)]
    wf=[Bar(1) for _ in range(WS)]; we=[Bar(W) for _ in range(WS)]
    tok=[None]*TS; wst=[None]*WS; readers_t=[set() for _ in range(TS)]; readers_w=[set() for _ in range(WS)]
    def copier():
        wi=0; wp=0; tp=0
        for pi,k in enumerate(pieces):
            for kb in range(0,k,G):
                n=min(G,k-kb)
                while not we[wi].done(wp^1): yield
                assert not readers_w[wi], "weight stage overwritten while read"
                wst[wi]=(pi,kb); wf[wi].arrive()
                wi+=1
                if wi==WS: wi=0; wp^=1
                for j in range(G):
                    while not te[j].done(tp^1): yield
                    assert not readers_t[j], "token stage overwritten while read"
                    tok[j]=(pi,kb+j) if j<n else ('empty',)
                    tf[j].arrive()
                    yield
                tp^=1
    def consumer(w):
        wi=0; wp=0; tp=0
        for pi,k in enumerate(pieces):
            # first weight stage
            while not wf[wi].done(wp): yield
            assert wst[wi]==(pi,0), (w,'weight',wst[wi],pi)
            readers_w[wi].add(w)
            prev=None
            stage_kb=0
            def kblock(j, stage_kb):
                nonlocal prev
                assert tok[j]==(pi,stage_kb+j), (w,'token',j,tok[j],(pi,stage_kb+j))
                readers_t[j].add(w)
                # wgmma on stage j in flight; step 0 wait -> release previous
                if prev is not None:
                    readers_t[prev].discard(w); te[prev].arrive()
                prev=j
            while stage_kb+G<k:
                for j in range(G):
                    while not tf[j].done(tp): yield
                    if j==G-1:
                        readers_w[wi].discard(w); we[wi].arrive()
                        wi+=1
                        if wi==WS: wi=0; wp^=1
                        while not wf[wi].done(wp): yield
                        assert wst[wi]==(pi,stage_kb+G)
                        readers_w[wi].add(w)
                    kblock(j, stage_kb); yield
                tp^=1; stage_kb+=G
            n=k-stage_kb
            for j in range(G):
                while not tf[j].done(tp): yield
                if j>=n:
                    assert tok[j]==('empty',), (w,'dummy',tok[j])
                    te[j].arrive(); continue
                if j+1>=n:
                    readers_w[wi].discard(w); we[wi].arrive()
                kblock(j, stage_kb); yield
            wi+=1
            if wi==WS: wi=0; wp^=1
            # wait<0>, release last
            readers_t[prev].discard(w); te[prev].arrive()
            tp^=1
    procs=[copier()]+[consumer(w) for w in range(W)]
    alive=list(range(len(procs)))
    steps=0
    while alive:
        i=rnd.choice(alive)
        try: next(procs[i])
        except StopIteration: alive.remove(i)
        steps+=1
        assert steps<10**6, "deadlock"
    return steps

for seed in range(3000):
    rnd=random.Random(seed)
    pieces=[rnd.randint(1,13) for _ in range(rnd.randint(1,7))]
    run(pieces, seed)
print("ok: 3000 random piece sequences, no deadlock, every read saw its k-block, no stage overwritten while read")
