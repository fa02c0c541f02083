//go:build linux

package collect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// nlSock is a NETLINK_NETFILTER socket of the namespace it was opened in.
type nlSock struct {
	fd  int
	seq uint32
	buf []byte
}

// nlRecvBuf is the receive buffer. The kernel fills a dump's batches up to
// the size of the reader's last receive buffer, at most 32 KiB; a smaller
// one means more batches, and each batch walks the rules before it again.
const nlRecvBuf = 64 << 10

func openNL() (*nlSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", needsRoot(err))
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding a netfilter netlink socket: %w", err)
	}
	return &nlSock{fd: fd, buf: make([]byte, nlRecvBuf)}, nil
}

func (s *nlSock) close() { unix.Close(s.fd) }

// errReadStopped ends a worker's dump after another worker failed.
var errReadStopped = errors.New("read stopped")

// errDumpInterrupted says the ruleset changed during a dump.
var errDumpInterrupted = errors.New("the ruleset changed during the read")

// request sends one nf_tables request (a dump when dump is set) and calls
// each with the attributes of every answer message until the end.
func (s *nlSock) request(msg uint16, family uint8, dump bool, attrs []byte, each func(typ uint16, attrs []byte) error) error {
	s.seq++
	n := unix.NLMSG_HDRLEN + 4 + len(attrs)
	req := make([]byte, n)
	binary.NativeEndian.PutUint32(req[0:], uint32(n))
	binary.NativeEndian.PutUint16(req[4:], nfnlSubsysNftables<<8|msg)
	flags := uint16(unix.NLM_F_REQUEST)
	if dump {
		flags |= unix.NLM_F_DUMP
	} else {
		flags |= unix.NLM_F_ACK
	}
	binary.NativeEndian.PutUint16(req[6:], flags)
	binary.NativeEndian.PutUint32(req[8:], s.seq)
	req[16] = family
	copy(req[20:], attrs)
	if err := unix.Sendto(s.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink request: %w", needsRoot(err))
	}
	for {
		m, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink read: %w", err)
		}
		b := s.buf[:m]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("malformed netlink message")
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			fl := binary.NativeEndian.Uint16(b[6:])
			seq := binary.NativeEndian.Uint32(b[8:])
			body := b[unix.NLMSG_HDRLEN:l]
			b = b[min((l+3)&^3, len(b)):]
			if seq != s.seq {
				continue
			}
			if fl&unix.NLM_F_DUMP_INTR != 0 {
				return errDumpInterrupted
			}
			switch typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return fmt.Errorf("malformed netlink error")
				}
				if code := int32(binary.NativeEndian.Uint32(body)); code != 0 {
					return fmt.Errorf("netlink: %w", needsRoot(unix.Errno(-code)))
				}
				return nil // the ack of a request that is not a dump
			case unix.NLMSG_NOOP:
				continue
			}
			if len(body) < 4 {
				return fmt.Errorf("malformed nf_tables message")
			}
			if err := each(typ&0xff, body[4:]); err != nil {
				return err
			}
		}
	}
}

// genID is the ruleset's generation: it changes with every commit.
func (s *nlSock) genID() (uint32, error) {
	var id uint32
	var got bool
	err := s.request(nftMsgGetGen, unix.AF_UNSPEC, false, nil, func(typ uint16, attrs []byte) error {
		if typ != nftMsgNewGen {
			return nil
		}
		return nlAttrs(attrs, func(t uint16, v []byte) error {
			if t == nftaGenID {
				id, got = be32(v), true
			}
			return nil
		})
	})
	if err == nil && !got {
		err = fmt.Errorf("netlink: no ruleset generation in the answer")
	}
	return id, err
}

// nlString is a NUL-terminated string attribute.
func nlString(typ uint16, s string) []byte {
	n := 4 + len(s) + 1
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint16(b, uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], s)
	return b
}

// nftSave reads the iptables-nft rules of one family in the calling
// thread's network namespace and prints them as `iptables-nft-save -c`
// does (see nftsave.go). errNftSaveUnknown means the ruleset holds what it
// does not print; errDumpInterrupted that the ruleset kept changing.
func nftSave(f Family) ([]byte, error) {
	var err error
	for try := 0; try < 3; try++ {
		var out []byte
		if out, err = nftSaveOnce(f); !errors.Is(err, errDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

func nftSaveOnce(f Family) ([]byte, error) {
	family, v6 := uint8(nfprotoIPv4), false
	if f == IPv6 {
		family, v6 = nfprotoIPv6, true
	}
	workers := min(runtime.GOMAXPROCS(0), 4)
	socks := make([]*nlSock, 0, workers)
	defer func() {
		for _, s := range socks {
			s.close()
		}
	}()
	// Every socket is opened here, on the calling thread: a socket belongs
	// to the namespace it is opened in, and the workers below run on other
	// threads.
	for range workers {
		s, err := openNL()
		if err != nil {
			return nil, err
		}
		socks = append(socks, s)
	}
	s := socks[0]
	gen, err := s.genID()
	if err != nil {
		return nil, err
	}
	names := map[string]uint32{}
	if err := s.request(nftMsgGetTable, family, true, nil, func(typ uint16, attrs []byte) error {
		if typ != nftMsgNewTable {
			return nil
		}
		name, flags, err := parseTableMsg(attrs)
		names[name] = flags
		return err
	}); err != nil {
		return nil, err
	}
	chains := map[string][]nftSaveChain{}
	if err := s.request(nftMsgGetChain, family, true, nil, func(typ uint16, attrs []byte) error {
		if typ != nftMsgNewChain {
			return nil
		}
		t, c, err := parseChainMsg(attrs)
		chains[t] = append(chains[t], c)
		return err
	}); err != nil {
		return nil, err
	}
	tables, err := orderTables(names, chains)
	if err != nil {
		return nil, err
	}

	// One dump per chain, the chains shared by the workers.
	type job struct {
		table, chain string
		out          []byte
		err          error
	}
	var jobs []*job
	for _, t := range tables {
		for i, c := range t.chains {
			if !t.absent[i] {
				jobs = append(jobs, &job{table: t.name, chain: c.name})
			}
		}
	}
	next := make(chan *job, len(jobs))
	for _, j := range jobs {
		next <- j
	}
	close(next)
	// The first error stops every worker: a rule the reader does not
	// know means the tool runs, and the rest of the read is wasted.
	var failed atomic.Bool
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Go(func() {
			for j := range next {
				if failed.Load() {
					continue
				}
				attrs := append(nlString(nftaRuleTable, j.table), nlString(nftaRuleChain, j.chain)...)
				j.err = s.request(nftMsgGetRule, family, true, attrs, func(typ uint16, attrs []byte) error {
					if failed.Load() {
						return errReadStopped
					}
					if typ != nftMsgNewRule {
						return nil
					}
					var err error
					j.out, err = appendRule(j.out, attrs, v6)
					return err
				})
				if j.err != nil && j.err != errReadStopped {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	size := 0
	for _, j := range jobs {
		if j.err != nil && j.err != errReadStopped {
			return nil, j.err
		}
		size += len(j.out)
	}
	if now, err := s.genID(); err != nil {
		return nil, err
	} else if now != gen {
		return nil, errDumpInterrupted
	}

	stamp := time.Now().Format("Mon Jan _2 15:04:05 2006")
	out := make([]byte, 0, size+1024*len(tables))
	i := 0
	for _, t := range tables {
		out = append(out, "# Generated by iptscope from nf_tables netlink (as iptables-nft-save -c) on "...)
		out = append(out, stamp...)
		out = append(out, "\n*"...)
		out = append(out, t.name...)
		out = append(out, '\n')
		for _, c := range t.chains {
			out = appendChainHeader(out, c)
		}
		for k := range t.chains {
			if !t.absent[k] {
				out = append(out, jobs[i].out...)
				i++
			}
		}
		out = append(out, "COMMIT\n# Completed on "...)
		out = append(out, stamp...)
		out = append(out, '\n')
	}
	return out, nil
}
