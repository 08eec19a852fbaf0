package stream

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Limits bound what one stanza may cost before it is complete. They are
// checked as bytes arrive, so a client cannot make the server buffer more
// than MaxBytes for one stanza by never finishing it.
type Limits struct {
	MaxBytes    int // bytes of one top-level element, markup included
	MaxElements int // elements in one stanza, the stanza itself included
	MaxDepth    int // nesting; the stanza element is depth 1
	// MaxAttrs bounds the attributes of one element, namespace
	// declarations included; a quarter of it bounds the namespace
	// declarations in scope at once in one stanza. 0 means DefaultMaxAttrs.
	// Within MaxBytes alone one tag could carry 40,000 attributes; no XMPP
	// element needs more than a dozen.
	MaxAttrs int
}

// DefaultMaxAttrs is the attribute limit of a Limits that sets none.
const DefaultMaxAttrs = 256

func (l Limits) maxAttrs() int {
	if l.MaxAttrs <= 0 {
		return DefaultMaxAttrs
	}
	return l.MaxAttrs
}

// maxNSInScope bounds the namespace declarations a stanza has in scope at
// once (its own and its ancestors', not the header's). A prefix is looked
// up by walking the bindings from the innermost out: with 256 of them in
// scope a 256 KB stanza of prefixed attributes, each naming a prefix bound
// at the stanza's root, took 65 ms to parse, with 64 25 ms
// (BenchmarkPrefixLookups). Real stanzas have one declaration on a few
// elements of the path from the root (bindings of siblings do not add up).
func (l Limits) maxNSInScope() int { return max(l.maxAttrs()/4, 4) }

// Before authentication a connection is a stranger: small limits. After it,
// room for vCard avatars and OMEMO bundles.
var (
	PreAuthLimits  = Limits{MaxBytes: 8 << 10, MaxElements: 32, MaxDepth: 16, MaxAttrs: 64}
	PostAuthLimits = Limits{MaxBytes: 256 << 10, MaxElements: 4096, MaxDepth: 16, MaxAttrs: 256}
)

// Error is a stream-level error (RFC 6120 §4.9.3): the connection cannot go on.
type Error struct {
	Condition string
	Text      string
}

func (e *Error) Error() string {
	if e.Text != "" {
		return "stream error " + e.Condition + ": " + e.Text
	}
	return "stream error " + e.Condition
}

func errf(cond, text string) *Error { return &Error{Condition: cond, Text: text} }

// Kind says what Next found.
type Kind int

const (
	// Open is the stream header; Event.El holds its attributes and no children.
	Open Kind = iota + 1
	// Stanza is a complete top-level element (a stanza or a nonza).
	Stanza
	// Close is the closing stream tag.
	Close
)

// Event is one step of the stream.
type Event struct {
	Kind Kind
	El   *Element
}

type nsBind struct{ prefix, space string }

// Parser reads one XML stream. It is not safe for concurrent use.
type Parser struct {
	r   io.Reader
	lim Limits

	buf      []byte
	pos, end int
	off      int64 // stream offset of buf[pos]
	mark     int64 // stream offset where the current stanza (or gap) began
	scan     int   // resume point (relative to pos) while a token is incomplete
	scanQ    byte  // quote character open at scan, for tags
	readErr  error

	started  bool // header seen
	closed   bool
	closeDue bool // the header was self-closed: Close not returned yet
	sawDecl  bool // the XML declaration of this stream was read
	header   *Element
	hdrName  []byte // qualified name of the stream element, for its end tag
	hdrNS    int    // len(ns) with the header's bindings, before any stanza's

	ns     []nsBind
	nsMark []int      // len(ns) before each open element (header included)
	stack  []*Element // open elements of the current stanza
	names  [][]byte   // their qualified names as written
	count  int
}

const initialBuf = 2 << 10

// NewParser returns a parser reading from r with limits lim.
func NewParser(r io.Reader, lim Limits) *Parser {
	return &Parser{r: r, lim: lim}
}

// SetLimits changes the limits (after authentication). It applies from the
// next stanza on.
func (p *Parser) SetLimits(lim Limits) { p.lim = lim }

// Buffered is how many bytes were read from the connection but not parsed
// yet. After <starttls/> it must be zero: bytes sent in the clear before the
// TLS handshake must never be read as if they came over TLS.
func (p *Parser) Buffered() int { return p.end - p.pos }

// Partial reports whether part of a top-level element (a stanza) has been
// read but the element is not complete yet: Next has not returned it. The
// stream header and the closing stream tag count as top-level units too
// (a half-sent header after SASL holds memory like a half-sent stanza);
// white space between units (a keepalive) does not.
//
// c2s uses it to bound the time an unfinished stanza may take after
// authentication: a probe held +2.8 MiB RSS per connection, forever, with a
// 208 KB stanza it never finished. It stays true across a read that
// returns idle.ErrWouldBlock (or a timeout) mid-stanza, and after Release
// (which keeps a buffer that holds bytes). Bytes buffered behind a stanza
// that was already returned count as partial until Next parses them:
// the parser cannot know they are complete without parsing.
func (p *Parser) Partial() bool {
	return len(p.stack) > 0 || p.pendingStart() < p.end
}

// PartialBytes is how many bytes of the unfinished top-level element have
// been read (consumed into the element tree or still buffered); 0 when
// Partial is false. It bounds what the element holds: the tree built so far
// is made from those bytes.
func (p *Parser) PartialBytes() int {
	if len(p.stack) > 0 {
		return int(p.off-p.mark) + p.end - p.pos
	}
	return p.end - p.pendingStart()
}

// pendingStart is the buffer index of the first byte that is not white
// space between top-level units (p.end if there is none). Only meaningful
// when no stanza is open.
func (p *Parser) pendingStart() int {
	i := p.pos
	for i < p.end && isSpace(p.buf[i]) {
		i++
	}
	return i
}

// DefaultNS is the default namespace the stream header declared (the
// content namespace: jabber:client or jabber:server).
func (p *Parser) DefaultNS() string {
	s, _ := p.lookup(nil)
	return s
}

// SkipSpace drops buffered white space (a client may send a newline after
// <starttls/>; it is not data that could be mistaken for TLS-protected).
func (p *Parser) SkipSpace() {
	for p.pos < p.end && isSpace(p.buf[p.pos]) {
		p.pos++
		p.off++
	}
}

// Header returns the stream header once Next has returned Open.
func (p *Parser) Header() *Element { return p.header }

// Restart prepares for a new stream on the same connection (after SASL
// success). Bytes already buffered are kept.
func (p *Parser) Restart() {
	p.started, p.closed, p.closeDue, p.sawDecl, p.header, p.hdrName, p.hdrNS = false, false, false, false, nil, nil, 0
	p.ns, p.nsMark, p.stack, p.names, p.count = p.ns[:0], p.nsMark[:0], p.stack[:0], p.names[:0], 0
	p.mark = p.off
	p.scan, p.scanQ = 0, 0
}

var errMore = errors.New("need more data")

// Next returns the next event. Errors are *Error for bad input (send it as a
// stream error) or the reader's error (io.EOF, a closed connection, a timeout).
func (p *Parser) Next() (Event, error) {
	for {
		ev, err := p.step()
		if err == nil {
			if ev.Kind != 0 {
				return ev, nil
			}
			continue
		}
		if err != errMore {
			return Event{}, err
		}
		if err := p.fill(); err != nil {
			return Event{}, err
		}
	}
}

// fill reads more bytes, first checking that the unit being parsed has not
// already reached its size limit.
func (p *Parser) fill() error {
	if p.readErr != nil {
		return p.readErr
	}
	limit := p.lim.MaxBytes
	if !p.started {
		limit = PreAuthLimits.MaxBytes // the header, whatever the stanza limit
	}
	if p.off+int64(p.end-p.pos)-p.mark >= int64(limit) {
		return errf("policy-violation", "stanza too large")
	}
	if p.buf == nil {
		p.buf = *bufPool.Get().(*[]byte)
	}
	if p.pos > 0 && (p.pos == p.end || p.end == len(p.buf)) {
		copy(p.buf, p.buf[p.pos:p.end])
		p.end -= p.pos
		p.pos = 0
	}
	if p.end == len(p.buf) {
		n := 2 * len(p.buf)
		if max := limit + 1; n > max && max > p.end {
			n = max
		}
		nb := make([]byte, n)
		copy(nb, p.buf[:p.end])
		p.buf = nb
	}
	n, err := p.r.Read(p.buf[p.end:])
	p.end += n
	if err != nil {
		if err == io.EOF && n > 0 {
			return nil
		}
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			// A deadline or a would-block read: the stream can go on
			// after it, so do not remember it.
			if n == 0 {
				return err
			}
			return nil
		}
		p.readErr = err
		if n == 0 {
			return err
		}
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, initialBuf); return &b }}

// Release returns the read buffer to a pool if nothing is buffered: a
// connection that waits for its next stanza then holds no buffer.
func (p *Parser) Release() {
	if p.pos != p.end || p.buf == nil {
		return
	}
	if len(p.buf) == initialBuf {
		b := p.buf
		bufPool.Put(&b)
	}
	p.buf, p.pos, p.end = nil, 0, 0
}

// consume advances past n bytes of a finished token.
func (p *Parser) consume(n int) {
	p.pos += n
	p.off += int64(n)
	p.scan, p.scanQ = 0, 0
	if p.pos == p.end && len(p.buf) > 4*initialBuf && len(p.stack) == 0 {
		// A large stanza is done: give its buffer back rather than keep
		// 256 KiB per idle connection.
		p.buf, p.pos, p.end = nil, 0, 0
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// step parses at most one token. It returns errMore when the token is
// incomplete, and a zero Event when a token was consumed without producing
// an event.
func (p *Parser) step() (Event, error) {
	if p.closeDue {
		p.closeDue = false
		return Event{Kind: Close}, nil
	}
	data := p.buf[p.pos:p.end]
	if len(p.stack) == 0 {
		// Between stanzas (or before the header): whitespace is a keepalive.
		i := 0
		for i < len(data) && isSpace(data[i]) {
			i++
		}
		if i > 0 {
			p.consume(i)
			p.mark = p.off
			data = data[i:]
		}
		if len(data) == 0 {
			return Event{}, errMore
		}
		if p.closed {
			return Event{}, errf("not-well-formed", "data after the end of the stream")
		}
		if data[0] != '<' {
			if !p.started {
				return Event{}, errf("not-well-formed", "text before the stream header")
			}
			return Event{}, errf("bad-format", "text at stream level")
		}
	}
	if len(data) == 0 {
		return Event{}, errMore
	}
	if data[0] != '<' {
		return p.text(data)
	}
	if len(data) < 2 {
		return Event{}, errMore
	}
	switch data[1] {
	case '/':
		return p.endTag(data)
	case '?':
		return p.procInst(data)
	case '!':
		return p.bang(data)
	}
	return p.startTag(data)
}

func (p *Parser) procInst(data []byte) (Event, error) {
	// Only the XML declaration, once, and only before the header, is
	// allowed (XML 1.0 §2.8: one declaration, at the start; a second
	// "<?xml" is a processing instruction with a reserved name). Each
	// stream has its own: clients repeat it when they restart the stream.
	if p.sawDecl && !p.started {
		return Event{}, errf("restricted-xml", "a second XML declaration")
	}
	if p.started {
		return Event{}, errf("restricted-xml", "processing instructions are not allowed")
	}
	if len(data) < 6 {
		if !bytes.HasPrefix([]byte("<?xml "), data) && !bytes.HasPrefix([]byte("<?xml\t"), data) {
			return Event{}, errf("restricted-xml", "processing instructions are not allowed")
		}
		return Event{}, errMore
	}
	if string(data[:5]) != "<?xml" || !isSpace(data[5]) {
		return Event{}, errf("restricted-xml", "processing instructions are not allowed")
	}
	i := bytes.Index(data, []byte("?>"))
	if i < 0 {
		return Event{}, errMore
	}
	decl := data[5:i]
	if j := bytes.Index(decl, []byte("encoding")); j >= 0 {
		rest := bytes.TrimLeft(decl[j+8:], " \t\r\n=")
		if len(rest) > 0 && (rest[0] == '\'' || rest[0] == '"') {
			rest = rest[1:]
		}
		if !bytes.HasPrefix(bytes.ToUpper(rest), []byte("UTF-8")) {
			return Event{}, errf("unsupported-encoding", "only UTF-8 is supported")
		}
	}
	p.consume(i + 2)
	p.mark = p.off
	p.sawDecl = true
	return Event{}, nil
}

func (p *Parser) bang(data []byte) (Event, error) {
	const cdata = "<![CDATA["
	if len(p.stack) > 0 {
		if len(data) < len(cdata) && bytes.HasPrefix([]byte(cdata), data) {
			return Event{}, errMore
		}
		if bytes.HasPrefix(data, []byte(cdata)) {
			from := len(cdata)
			if p.scan > from {
				from = p.scan
			}
			i := bytes.Index(data[from:], []byte("]]>"))
			if i < 0 {
				p.scan = max(len(data)-2, len(cdata))
				return Event{}, errMore
			}
			raw := data[len(cdata) : from+i]
			if err := checkChars(raw); err != nil {
				return Event{}, err
			}
			p.appendText(string(raw))
			p.consume(from + i + 3)
			return Event{}, nil
		}
	}
	return Event{}, errf("restricted-xml", "comments, DTDs and entity declarations are not allowed")
}

func (p *Parser) appendText(s string) {
	if s == "" {
		return
	}
	top := p.stack[len(p.stack)-1]
	if n := len(top.Nodes); n > 0 && top.Nodes[n-1].El == nil {
		top.Nodes[n-1].Text += s
		return
	}
	top.Nodes = append(top.Nodes, Node{Text: s})
}

func (p *Parser) text(data []byte) (Event, error) {
	i := bytes.IndexByte(data[p.scan:], '<')
	if i < 0 {
		p.scan = len(data)
		return Event{}, errMore
	}
	raw := data[:p.scan+i]
	if bytes.Contains(raw, []byte("]]>")) {
		return Event{}, errf("not-well-formed", "']]>' in character data")
	}
	s, err := unescape(raw)
	if err != nil {
		return Event{}, err
	}
	p.appendText(s)
	p.consume(len(raw))
	return Event{}, nil
}

func (p *Parser) endTag(data []byte) (Event, error) {
	i := bytes.IndexByte(data, '>')
	if i < 0 {
		if len(data) > 1024 {
			return Event{}, errf("not-well-formed", "end tag too long")
		}
		return Event{}, errMore
	}
	name := bytes.TrimRight(data[2:i], " \t\r\n")
	if len(p.stack) == 0 {
		if !p.started || !bytes.Equal(name, p.hdrName) {
			return Event{}, errf("not-well-formed", "unexpected end tag")
		}
		p.consume(i + 1)
		p.closed = true
		p.mark = p.off
		return Event{Kind: Close}, nil
	}
	if !bytes.Equal(name, p.names[len(p.names)-1]) {
		return Event{}, errf("not-well-formed", "mismatched end tag")
	}
	p.consume(i + 1)
	return p.pop()
}

// pop closes the innermost open element; closing the stanza element
// returns it.
func (p *Parser) pop() (Event, error) {
	n := len(p.stack) - 1
	el := p.stack[n]
	p.stack[n] = nil
	p.stack = p.stack[:n]
	p.names = p.names[:n]
	p.ns = p.ns[:p.nsMark[len(p.nsMark)-1]]
	p.nsMark = p.nsMark[:len(p.nsMark)-1]
	if n > 0 {
		return Event{}, nil
	}
	if p.off-p.mark > int64(p.lim.MaxBytes) {
		return Event{}, errf("policy-violation", "stanza too large")
	}
	p.mark = p.off
	p.count = 0
	return Event{Kind: Stanza, El: el}, nil
}

// tagEnd finds the '>' that ends a start tag, skipping quoted values; it
// resumes where the last incomplete scan stopped.
func (p *Parser) tagEnd(data []byte) int {
	i, q := p.scan, p.scanQ
	if i == 0 {
		i = 1
	}
	for ; i < len(data); i++ {
		c := data[i]
		if q != 0 {
			if c == q {
				q = 0
			}
			continue
		}
		switch c {
		case '\'', '"':
			q = c
		case '>':
			return i
		}
	}
	p.scan, p.scanQ = i, q
	return -1
}

// startTag handles a start tag: the stream header, a stanza, or a child of
// one. Its steps are separate functions because each has its own rules and
// its own cost to bound: splitting the attributes (scanAttrs), binding the
// namespaces they declare (declareNS), resolving the element's name and
// attributes against those bindings (resolve), and placing the element in
// the stream (openStream, push).
func (p *Parser) startTag(data []byte) (Event, error) {
	gt := p.tagEnd(data)
	if gt < 0 {
		return Event{}, errMore
	}
	if len(p.stack) == 0 && p.started {
		p.count = 0
	}
	tag := data[1:gt]
	selfClose := len(tag) > 0 && tag[len(tag)-1] == '/'
	if selfClose {
		tag = tag[:len(tag)-1]
	}
	qname, rest, err := scanName(tag)
	if err != nil {
		return Event{}, err
	}
	// Eight attributes cover nearly every stanza element without a heap
	// allocation; more spill to the heap through append.
	var buf [8]rawAttr
	ra, err := p.scanAttrs(rest, buf[:0])
	if err != nil {
		return Event{}, err
	}
	if err := p.declareNS(ra); err != nil {
		return Event{}, err
	}
	el, err := p.resolve(qname, ra)
	if err != nil {
		return Event{}, err
	}
	if !p.started {
		return p.openStream(el, qname, gt, selfClose), nil
	}
	return p.push(el, qname, gt, selfClose)
}

// rawAttr is one attribute as written in a start tag: its qualified name
// and its value before decoding, both slices of the read buffer.
type rawAttr struct{ qname, value []byte }

// scanAttrs splits the attributes that follow an element's name. It stops
// at the limit's attribute count, namespace declarations included (each one
// costs a binding and makes every prefix lookup longer), as soon as one too
// many is seen, and it rejects a qualified name written twice.
func (p *Parser) scanAttrs(rest []byte, ra []rawAttr) ([]rawAttr, error) {
	max := p.lim.maxAttrs()
	for {
		n := 0
		for n < len(rest) && isSpace(rest[n]) {
			n++
		}
		if n == len(rest) {
			break
		}
		if n == 0 {
			return nil, errf("not-well-formed", "missing space between attributes")
		}
		if len(ra) == max {
			return nil, errf("policy-violation", "more than "+strconv.Itoa(max)+" attributes in one element")
		}
		a, r, err := scanAttr(rest[n:])
		if err != nil {
			return nil, err
		}
		ra = append(ra, a)
		rest = r
	}
	if d := dupQName(ra); d != nil {
		return nil, errf("not-well-formed", "duplicate attribute "+string(d))
	}
	return ra, nil
}

// scanAttr reads one name='value' (or name="value") and returns what follows.
func scanAttr(b []byte) (rawAttr, []byte, error) {
	name, r, err := scanName(b)
	if err != nil {
		return rawAttr{}, nil, err
	}
	r = bytes.TrimLeft(r, " \t\r\n")
	if len(r) == 0 || r[0] != '=' {
		return rawAttr{}, nil, errf("not-well-formed", "attribute without value")
	}
	r = bytes.TrimLeft(r[1:], " \t\r\n")
	if len(r) == 0 || (r[0] != '\'' && r[0] != '"') {
		return rawAttr{}, nil, errf("not-well-formed", "unquoted attribute value")
	}
	end := bytes.IndexByte(r[1:], r[0])
	if end < 0 {
		return rawAttr{}, nil, errf("not-well-formed", "unterminated attribute value")
	}
	return rawAttr{name, r[1 : 1+end]}, r[2+end:], nil
}

// smallAttrs is the attribute count up to which the duplicate checks
// compare every pair: no allocation, and fastest for the few attributes a
// stanza element has. Above it they sort a copy, so the cost grows as
// n log n: comparing pairs of one 253 KB tag's 32,000 attributes took 1.9 s
// of CPU (issue 9) and slowed every other connection.
const smallAttrs = 16

// dupQName returns a qualified name that occurs twice in ra, or nil.
func dupQName(ra []rawAttr) []byte {
	if len(ra) <= smallAttrs {
		for i := 1; i < len(ra); i++ {
			for j := 0; j < i; j++ {
				if bytes.Equal(ra[i].qname, ra[j].qname) {
					return ra[i].qname
				}
			}
		}
		return nil
	}
	names := make([][]byte, len(ra))
	for i := range ra {
		names[i] = ra[i].qname
	}
	slices.SortFunc(names, bytes.Compare)
	for i := 1; i < len(names); i++ {
		if bytes.Equal(names[i-1], names[i]) {
			return names[i]
		}
	}
	return nil
}

// dupExpanded reports whether two attributes have the same namespace and
// local name though written with different prefixes (xmlns:a='urn:x'
// xmlns:b='urn:x' a:t='1' b:t='2'), which Namespaces in XML §6.3 forbids
// like a repeated name.
func dupExpanded(attrs []Attr) (Attr, bool) {
	if len(attrs) <= smallAttrs {
		for i := 1; i < len(attrs); i++ {
			for j := 0; j < i; j++ {
				if attrs[i].Space == attrs[j].Space && attrs[i].Local == attrs[j].Local {
					return attrs[i], true
				}
			}
		}
		return Attr{}, false
	}
	type expanded struct{ space, local string }
	names := make([]expanded, len(attrs))
	for i, a := range attrs {
		names[i] = expanded{a.Space, a.Local}
	}
	slices.SortFunc(names, func(a, b expanded) int {
		if c := strings.Compare(a.space, b.space); c != 0 {
			return c
		}
		return strings.Compare(a.local, b.local)
	})
	for i := 1; i < len(names); i++ {
		if names[i-1] == names[i] {
			return Attr{Space: names[i].space, Local: names[i].local}, true
		}
	}
	return Attr{}, false
}

// nsDecl reports whether an attribute is a namespace declaration, and the
// prefix it binds ("" for the default namespace).
func nsDecl(qname []byte) (prefix []byte, ok bool) {
	switch {
	case string(qname) == "xmlns":
		return nil, true
	case bytes.HasPrefix(qname, []byte("xmlns:")):
		return qname[6:], true
	}
	return nil, false
}

// declareNS binds the namespaces an element declares. It runs before the
// element's own name and attributes are resolved, because the declarations
// apply to them too; pop drops them again with the element.
//
// The bindings a stanza has in scope are capped (Limits.maxNSInScope): a
// prefix bound at the stanza's root is looked up through every binding made
// below it, so 16 levels of maximal elements would make each lookup walk
// thousands of entries.
func (p *Parser) declareNS(ra []rawAttr) error {
	p.nsMark = append(p.nsMark, len(p.ns))
	for _, a := range ra {
		prefix, ok := nsDecl(a.qname)
		if !ok {
			continue
		}
		v, err := unescapeAttr(a.value)
		if err != nil {
			return err
		}
		if !validNSDecl(string(prefix), v) {
			return errf("bad-namespace-prefix", "illegal namespace declaration")
		}
		p.ns = append(p.ns, nsBind{internB(prefix), intern(v)})
	}
	if max := p.lim.maxNSInScope(); p.started && len(p.ns)-p.hdrNS > max {
		return errf("policy-violation", "more than "+strconv.Itoa(max)+" namespace declarations in scope")
	}
	return nil
}

// validNSDecl applies Namespaces in XML §3: "xmlns" cannot be bound, "xml"
// only to its own namespace and that namespace to no other prefix, and a
// prefix cannot be undeclared (XML 1.0 namespaces have no xmlns:p=”).
func validNSDecl(prefix, space string) bool {
	switch {
	case prefix == "xmlns":
		return false
	case prefix == "xml":
		return space == NSXML
	case space == NSXML:
		return false
	case prefix != "" && space == "":
		return false
	}
	return true
}

// resolve builds the element: its name and ordinary attributes, with their
// prefixes resolved against the bindings in scope. Namespace declarations
// are not kept as attributes; Append writes the ones an element needs.
func (p *Parser) resolve(qname []byte, ra []rawAttr) (*Element, error) {
	prefix, local := splitQName(qname)
	space, ok := p.lookup(prefix)
	if !ok {
		return nil, errf("bad-namespace-prefix", "unbound prefix "+string(prefix))
	}
	el := &Element{Space: space, Local: internB(local), Prefix: internB(prefix)}
	n, prefixed := 0, false
	for _, a := range ra {
		if _, ok := nsDecl(a.qname); !ok {
			n++
		}
	}
	if n > 0 {
		el.Attr = make([]Attr, 0, n)
	}
	for _, a := range ra {
		if _, ok := nsDecl(a.qname); ok {
			continue
		}
		at, err := p.attr(a)
		if err != nil {
			return nil, err
		}
		prefixed = prefixed || at.Prefix != ""
		el.Attr = append(el.Attr, at)
	}
	// Unprefixed names were compared as written (scanAttrs); only
	// prefixes can make two different names mean the same attribute.
	if prefixed {
		if d, ok := dupExpanded(el.Attr); ok {
			return nil, errf("not-well-formed", "duplicate attribute {"+d.Space+"}"+d.Local)
		}
	}
	return el, nil
}

// attr decodes one ordinary attribute and resolves its prefix. An
// unprefixed attribute is in no namespace (not the default one).
func (p *Parser) attr(a rawAttr) (Attr, error) {
	v, err := unescapeAttr(a.value)
	if err != nil {
		return Attr{}, err
	}
	ap, al := splitQName(a.qname)
	at := Attr{Local: internB(al), Value: v}
	if len(ap) > 0 {
		s, ok := p.lookup(ap)
		if !ok {
			return Attr{}, errf("bad-namespace-prefix", "unbound prefix "+string(ap))
		}
		at.Space, at.Prefix = s, internB(ap)
	}
	return at, nil
}

// openStream makes el the stream header, open for the whole stream and
// never on the stack. A self-closed header (<stream:stream .../>) is a
// stream that has already ended: Next reports Close right after Open, so
// the connection closes at once instead of waiting for bytes that can only
// be an error (it used to sit until the 60 s authentication timeout).
func (p *Parser) openStream(el *Element, qname []byte, gt int, selfClose bool) Event {
	p.started = true
	p.header = el
	p.hdrName = append([]byte(nil), qname...)
	p.hdrNS = len(p.ns)
	p.consume(gt + 1)
	p.mark = p.off
	if selfClose {
		p.closed = true
		p.closeDue = true
	}
	return Event{Kind: Open, El: el}
}

// push places a stanza element or a child in the tree, after the stanza's
// element-count and depth limits; a self-closed element is complete at once.
func (p *Parser) push(el *Element, qname []byte, gt int, selfClose bool) (Event, error) {
	p.count++
	if p.count > p.lim.MaxElements {
		return Event{}, errf("policy-violation", "too many elements in one stanza")
	}
	if len(p.stack)+1 > p.lim.MaxDepth {
		return Event{}, errf("policy-violation", "elements nested too deeply")
	}
	if len(p.stack) > 0 {
		top := p.stack[len(p.stack)-1]
		top.Nodes = append(top.Nodes, Node{El: el})
	}
	p.stack = append(p.stack, el)
	p.names = append(p.names, append([]byte(nil), qname...))
	p.consume(gt + 1)
	if selfClose {
		return p.pop()
	}
	return Event{}, nil
}

func (p *Parser) lookup(prefix []byte) (string, bool) {
	if string(prefix) == "xml" {
		return NSXML, true
	}
	for i := len(p.ns) - 1; i >= 0; i-- {
		if p.ns[i].prefix == string(prefix) {
			return p.ns[i].space, true
		}
	}
	if len(prefix) == 0 {
		return "", true
	}
	return "", false
}

func splitQName(q []byte) (prefix, local []byte) {
	if i := bytes.IndexByte(q, ':'); i >= 0 {
		return q[:i], q[i+1:]
	}
	return nil, q
}

// scanName reads an XML name (with at most one colon, not at either end).
func scanName(b []byte) (name, rest []byte, err error) {
	i := 0
	colons := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' ||
				(i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'))
			if !ok {
				break
			}
			if c == ':' {
				colons++
			}
			i++
			continue
		}
		r, w := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && w == 1 {
			return nil, nil, errf("unsupported-encoding", "invalid UTF-8")
		}
		if !(unicode.IsLetter(r) || i > 0 && (unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r) || r == 0xB7)) {
			break
		}
		i += w
	}
	if i == 0 {
		return nil, nil, errf("not-well-formed", "expected a name")
	}
	n := b[:i]
	if colons > 1 || n[0] == ':' || n[len(n)-1] == ':' {
		return nil, nil, errf("bad-namespace-prefix", "malformed qualified name")
	}
	return n, b[i:], nil
}

// checkChars validates UTF-8 and XML's character range.
func checkChars(b []byte) error {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return errf("not-well-formed", "control character")
			}
			i++
			continue
		}
		r, w := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && w == 1 {
			return errf("unsupported-encoding", "invalid UTF-8")
		}
		if !isXMLChar(r) {
			return errf("not-well-formed", "character not allowed in XML")
		}
		i += w
	}
	return nil
}

func unescapeAttr(b []byte) (string, error) {
	if bytes.IndexByte(b, '<') >= 0 {
		return "", errf("not-well-formed", "'<' in attribute value")
	}
	// Attribute-value normalization (XML 1.0 §3.3.3): literal white space
	// becomes a space; white space written as a character reference stays.
	if bytes.ContainsAny(b, "\t\n\r") {
		n := append([]byte(nil), b...)
		for i, c := range n {
			if c == '\t' || c == '\n' || c == '\r' {
				n[i] = ' '
			}
		}
		b = n
	}
	if len(b) < 64 && bytes.IndexByte(b, '&') < 0 {
		if err := checkChars(b); err != nil {
			return "", err
		}
		return internB(b), nil
	}
	return unescape(b)
}

// unescape decodes character data: the five predefined entities and
// character references. Any other entity reference is restricted XML.
func unescape(b []byte) (string, error) {
	if err := checkChars(b); err != nil {
		return "", err
	}
	amp := bytes.IndexByte(b, '&')
	if amp < 0 {
		return string(b), nil
	}
	out := make([]byte, 0, len(b))
	for amp >= 0 {
		out = append(out, b[:amp]...)
		b = b[amp:]
		semi := bytes.IndexByte(b, ';')
		if semi < 0 {
			return "", errf("not-well-formed", "unterminated entity reference")
		}
		ref := b[1:semi]
		switch string(ref) {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "quot":
			out = append(out, '"')
		case "apos":
			out = append(out, '\'')
		default:
			if len(ref) < 2 || ref[0] != '#' {
				return "", errf("restricted-xml", "entity references are not allowed")
			}
			var n uint64
			var err error
			if ref[1] == 'x' {
				n, err = strconv.ParseUint(string(ref[2:]), 16, 32)
			} else {
				n, err = strconv.ParseUint(string(ref[1:]), 10, 32)
			}
			if err != nil || !isXMLChar(rune(n)) {
				return "", errf("not-well-formed", "bad character reference")
			}
			out = utf8.AppendRune(out, rune(n))
		}
		b = b[semi+1:]
		amp = bytes.IndexByte(b, '&')
	}
	out = append(out, b...)
	return string(out), nil
}

// Interning the names and namespaces every stanza repeats saves an
// allocation per element; the map lookup with string(b) does not allocate.
var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"", "message", "presence", "iq", "body", "id", "to", "from", "type",
		"lang", "xml", "stream", "show", "status", "priority", "query", "item", "x", "c", "error",
		"jid", "name", "subscription", "ask", "group", "thread", "subject", "delay", "stamp", "ver",
		"hash", "node", "r", "a", "h", "enable", "active", "inactive", "request", "received",
		"sent", "forwarded", "result", "set", "get", "chat", "normal", "headline", "groupchat",
		"ping", "bind", "resource", "session", "auth", "response", "starttls", "mechanism",
		NSStream, NSClient, NSServer, NSXML, NSStreamE, NSStanzaE,
		"jabber:iq:roster", "urn:xmpp:ping", "urn:xmpp:sm:3", "urn:xmpp:receipts",
		"http://jabber.org/protocol/caps", "urn:xmpp:delay", "urn:xmpp:carbons:2",
		"http://jabber.org/protocol/chatstates", "urn:xmpp:csi:0", "urn:xmpp:sid:0",
		"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
		"urn:ietf:params:xml:ns:xmpp-sasl", "urn:ietf:params:xml:ns:xmpp-tls",
		"urn:ietf:params:xml:ns:xmpp-bind", "composing", "paused", "markable",
		"urn:xmpp:chat-markers:0"} {
		m[s] = s
	}
	return m
}()

func intern(s string) string {
	if v, ok := interned[s]; ok {
		return v
	}
	return s
}

func internB(b []byte) string {
	if v, ok := interned[string(b)]; ok {
		return v
	}
	return string(b)
}

// storedLimits are a little above a client's: stored bytes came from one,
// plus what the server added (delay stamps).
var storedLimits = Limits{MaxBytes: 1 << 20, MaxElements: 8192, MaxDepth: 32, MaxAttrs: 512}

// ParseElement parses one element that was stored with el.Append(nil, "")
// (which declares its namespace), with the same parser that reads clients.
func ParseElement(b []byte) (*Element, error) {
	p := NewParser(io.MultiReader(strings.NewReader("<s>"), bytes.NewReader(b)), storedLimits)
	if ev, err := p.Next(); err != nil || ev.Kind != Open {
		return nil, errors.New("stream: stored element: no wrapper")
	}
	ev, err := p.Next()
	if err != nil {
		return nil, err
	}
	if ev.Kind != Stanza {
		return nil, errors.New("stream: stored element: not an element")
	}
	return ev.El, nil
}
