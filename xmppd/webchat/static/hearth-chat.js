// The chat page's configuration (a file, not inline: the CSP forbids
// inline script). index.html carries the box's settings in data-
// attributes; this module loads the WebCrypto shim when the page is not a
// secure context, then starts Converse.

const body = document.body;
const domain = body.dataset.domain;
const rooms = JSON.parse(body.dataset.rooms || '[]');
const wsURL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + body.dataset.websocket;
const base = new URL('../', import.meta.url); // /chat/
const statusEl = document.getElementById('hearth-status');

// The chat is as much shorter as our bar is high (hearth-chat.css).
const bar = document.getElementById('hearth-bar');
new ResizeObserver(() => body.style.setProperty('--hearth-bar', `${bar.offsetHeight}px`)).observe(bar);

function say(text) {
    statusEl.textContent = text;
    statusEl.hidden = !text;
    body.classList.toggle('hearth-has-status', !!text);
}

// Over plain HTTP there is no crypto.subtle: SCRAM runs on the shim, and
// OMEMO (which needs real WebCrypto for AES and key generation) is off.
let secure = true;
if (!window.isSecureContext || !globalThis.crypto?.subtle) {
    secure = false;
    const shim = await import('./webcrypto-shim.js');
    shim.install();
    document.getElementById('hearth-note').hidden = false;
    body.classList.add('hearth-insecure');
}

// index.html loads Converse (an ES module that sets window.converse) as
// a module before this one: module scripts run in document order, and
// Converse finds its WebAssembly for OMEMO next to its own <script src>.
if (!window.converse) {
    say('The chat could not be loaded from the box. Reload the page to try again.');
    throw new Error('converse.min.js did not load');
}

const { Strophe } = converse.env;

// Connection watchdog: Converse shows a spinner while it (re)connects and
// keeps retrying. When the box does not answer for a while say so in
// words, and take the words away once connected.
const CONNECTING = [Strophe.Status.CONNECTING, Strophe.Status.AUTHENTICATING, Strophe.Status.RECONNECTING];
const FAILED = [Strophe.Status.CONNFAIL, Strophe.Status.CONNTIMEOUT];
const UNREACHABLE = 'The chat server (your Hearth box) does not answer. Check that the box is switched on and that this device is on the same network or the internet. This page keeps trying by itself.';
// Our name instead of Converse's logo, and no footer: Converse's footer in
// full-screen mode shows its sponsors' logos from conversejs.org (three
// requests to another host on the login page, which the CSP blocks).
class HearthBrand extends HTMLElement {
    connectedCallback() {
        if (this.childElementCount) return;
        const name = document.createElement('p');
        name.className = 'hearth-brand';
        name.textContent = 'Hearth';
        const by = document.createElement('p');
        by.className = 'hearth-byline';
        by.textContent = 'Chat with your club, on your own box';
        this.append(name, by);
    }
}
class HearthFooter extends HTMLElement {
    connectedCallback() {
        if (this.childElementCount) return;
        const p = document.createElement('p');
        p.className = 'hearth-footer';
        p.textContent = 'The chat window is Converse.js, free software (MPL 2.0).';
        this.append(p);
    }
}

converse.plugins.add('hearth', {
    initialize() {
        const { _converse } = this;
        const { api } = _converse;
        // api.elements.define only records the class; Converse defines the
        // custom elements after the plugins are initialised, so ours win.
        api.elements.define('converse-brand-logo', HearthBrand);
        api.elements.define('converse-footer', HearthFooter);
        let since = 0;
        let failed = false;
        const check = () => {
            const st = _converse.state?.connfeedback?.get('connection_status');
            window.hearthChat.status = st; // for the browser test
            if (st === Strophe.Status.CONNECTED || st === Strophe.Status.ATTACHED) {
                since = 0;
                failed = false;
                say('');
            } else if (FAILED.includes(st)) {
                failed = true;
                say(UNREACHABLE);
            } else if (CONNECTING.includes(st)) {
                since ||= Date.now();
                if (failed || Date.now() - since > 10000) say(UNREACHABLE);
            } else {
                since = 0;
            }
        };
        // Converse 14 waits for the block list (XEP-0191) forever when the
        // server does not offer blocking: opening a chat with anyone not in
        // the roster then hung (seen in the browser test). An empty list
        // for such a server.
        api.listen.on('discoInitialized', async () => {
            const domain = _converse.session.get('domain');
            if (!_converse.state.blocklist && !(await api.disco.supports(Strophe.NS.BLOCKING, domain))) {
                const none = { get: () => undefined, models: [], length: 0, on() {}, off() {}, filter: () => [], map: () => [], toJSON: () => [] };
                api.trigger('blocklistInitialized', none);
            }
        });
        setInterval(check, 1000);
        api.listen.on('will-reconnect', () => { failed = true; check(); });
        api.listen.on('connected', check);
        api.listen.on('reconnected', check);
    },
});

// Only SCRAM: the password itself never goes over the wire, on HTTP or
// HTTPS (Strophe would otherwise fall back to PLAIN).
const mechanisms = [Strophe.SASLSHA1, Strophe.SASLSHA256, Strophe.SASLSHA384, Strophe.SASLSHA512].filter(Boolean);
const here = [domain, `*.${domain}`, location.hostname];

window.hearthChat = { secure, domain, wsURL, mechanisms: mechanisms.map((m) => m.mechname) };

// Coming from the invite page that just made the account: take the login
// it handed over (once, by cookie; xmppd/webchat/handoff.go) and log in
// without asking again. The password is not kept: Converse keeps SCRAM
// keys on a trusted device.
let handoff = {};
if (location.hash === '#handoff') {
    history.replaceState(null, '', location.pathname);
    try {
        const r = await fetch(new URL('handoff', base), { method: 'POST', credentials: 'same-origin' });
        if (r.ok) {
            const { jid, password } = await r.json();
            handoff = { jid, password, auto_login: true };
        }
    } catch (e) {
        console.warn('hand-off failed', e);
    }
}

converse.initialize({
    ...handoff,
    whitelisted_plugins: ['hearth'],
    blacklisted_plugins: secure ? [] : ['converse-omemo'],
    view_mode: 'fullscreen',
    theme: 'classic',
    dark_theme: 'classic',
    i18n: 'en',
    loglevel: 'warn',
    assets_path: new URL('dist', base).pathname,
    // The box's own WebSocket, same origin; no lookup of the domain's
    // host-meta (the domain may not point at this box from here).
    websocket_url: wsURL,
    discover_connection_methods: false,
    connection_options: { mechanisms },
    // A closed club: only the box's accounts, no sign-up form (new members
    // come through an invitation page, which registers them).
    locked_domain: domain,
    default_domain: domain,
    allow_registration: false,
    registration_domain: '',
    providers_link: '',
    show_client_info: false,
    // Rooms to join at every login (xmppd/webchat Options.Rooms; xmppd
    // gives none: the club's default room comes as a Bookmarks 2 autojoin
    // bookmark, which a member can remove for good).
    auto_join_rooms: rooms,
    // Converse stopped at "Please choose your nickname" in the room its
    // autojoin bookmark names (a new member has no nickname yet, the
    // bookmark none; seen in the browser test): their account name is
    // their name in the club's rooms.
    muc_nickname_from_jid: true,
    // Nothing from any other host: no room search at search.jabber.network
    // (that query would leave the box), system emoji (the picker reads the
    // local emoji.json), no third-party players, media only from the box.
    muc_search_service: '',
    use_system_emojis: true,
    emoji_image_path: new URL('dist/', base).pathname,
    embed_3rd_party_media_players: false,
    fetch_url_headers: false,
    allowed_image_domains: here,
    allowed_audio_domains: here,
    allowed_video_domains: here,
    // Stay logged in across a reload: stream management resumes the
    // session, and Converse keeps the SCRAM keys (never the password) on a
    // trusted device.
    enable_smacks: true,
    reuse_scram_keys: true,
    auto_reconnect: true,
    omemo_default: false,
});
