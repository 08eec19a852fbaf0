// WebCrypto for the chat page over plain HTTP on the home network.
//
// Browsers give crypto.subtle only to secure contexts (HTTPS, localhost).
// On the home network the box has no certificate browsers trust, and
// Converse's SCRAM login needs crypto.subtle; without it the only login
// left would be PLAIN, which sends the password itself (our configuration
// never offers PLAIN). This module provides exactly what SCRAM uses —
// digest (SHA-1/256/384/512), importKey('raw') for HMAC and PBKDF2,
// sign('HMAC'), deriveBits('PBKDF2') — from @noble/hashes' audited code,
// served as the ES modules it ships (no bundler). Everything else
// (encrypt, generateKey, …: OMEMO) rejects with NotSupportedError, and
// hearth-chat.js turns OMEMO off and says so on the page.
import { sha1 } from '../dist/noble/legacy.js';
import { sha256, sha384, sha512 } from '../dist/noble/sha2.js';
import { hmac } from '../dist/noble/hmac.js';
import { pbkdf2Async } from '../dist/noble/pbkdf2.js';

const hashes = { 'SHA-1': sha1, 'SHA-256': sha256, 'SHA-384': sha384, 'SHA-512': sha512 };

function unsupported(what) {
    return new DOMException(`${what} is not available on this page without HTTPS`, 'NotSupportedError');
}

function algName(alg) {
    return String(typeof alg === 'string' ? alg : alg?.name).toUpperCase();
}

function hashOf(alg) {
    const h = hashes[algName(alg)];
    if (!h) throw unsupported(`hash ${algName(alg)}`);
    return h;
}

// bytes copies a BufferSource (the caller may reuse its buffer).
function bytes(data) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    throw new TypeError('expected an ArrayBuffer or a view of one');
}

function arrayBuffer(u8) {
    return u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
}

// Key material stays out of the key object (as with real CryptoKeys,
// which cannot be read unless extractable).
const material = new WeakMap();

class ShimKey {
    constructor(algorithm, usages, raw) {
        this.type = 'secret';
        this.extractable = false;
        this.algorithm = algorithm;
        this.usages = [...usages];
        material.set(this, raw);
        Object.freeze(this);
    }
}

function rawOf(key, alg, usage) {
    const raw = material.get(key);
    if (!raw || key.algorithm.name !== alg || !key.usages.includes(usage)) {
        throw new DOMException(`key cannot be used for ${alg} ${usage}`, 'InvalidAccessError');
    }
    return raw;
}

export const subtle = Object.freeze({
    async digest(alg, data) {
        return arrayBuffer(hashOf(alg)(bytes(data)));
    },
    async importKey(format, keyData, alg, extractable, usages) {
        if (format !== 'raw') throw unsupported(`key format ${format}`);
        const name = algName(alg);
        if (name === 'HMAC') {
            const hash = algName(alg.hash);
            hashOf(hash);
            return new ShimKey({ name: 'HMAC', hash: { name: hash } }, usages, bytes(keyData));
        }
        if (name === 'PBKDF2') return new ShimKey({ name: 'PBKDF2' }, usages, bytes(keyData));
        throw unsupported(`algorithm ${name}`);
    },
    async sign(alg, key, data) {
        if (algName(alg) !== 'HMAC') throw unsupported(`signing with ${algName(alg)}`);
        const raw = rawOf(key, 'HMAC', 'sign');
        return arrayBuffer(hmac(hashOf(key.algorithm.hash), raw, bytes(data)));
    },
    async verify(alg, key, signature, data) {
        const mac = new Uint8Array(await this.sign(alg, key, data));
        const sig = bytes(signature);
        let diff = mac.length ^ sig.length;
        for (let i = 0; i < mac.length && i < sig.length; i++) diff |= mac[i] ^ sig[i];
        return diff === 0;
    },
    async deriveBits(alg, key, length) {
        if (algName(alg) !== 'PBKDF2') throw unsupported(`deriving with ${algName(alg)}`);
        if (!Number.isInteger(length) || length <= 0 || length % 8) throw new DOMException('length must be a multiple of 8', 'OperationError');
        if (!Number.isInteger(alg.iterations) || alg.iterations < 1) throw new DOMException('bad iteration count', 'OperationError');
        const raw = rawOf(key, 'PBKDF2', 'deriveBits');
        const out = await pbkdf2Async(hashOf(alg.hash), raw, bytes(alg.salt), { c: alg.iterations, dkLen: length / 8 });
        return arrayBuffer(out);
    },
    async encrypt() { throw unsupported('encryption'); },
    async decrypt() { throw unsupported('decryption'); },
    async generateKey() { throw unsupported('key generation'); },
    async exportKey() { throw unsupported('key export'); },
    async deriveKey() { throw unsupported('deriveKey'); },
    async wrapKey() { throw unsupported('wrapKey'); },
    async unwrapKey() { throw unsupported('unwrapKey'); },
});

// install puts the shim in place of the missing crypto.subtle; it never
// replaces a real one. Returns whether it did.
export function install() {
    if (globalThis.crypto?.subtle) return false;
    Object.defineProperty(globalThis.crypto, 'subtle', { value: subtle, configurable: true, enumerable: true });
    return true;
}
