// JWTs for tests, signed with Node's crypto (HMAC and RSA from OpenSSL): connection and subscription
// tokens as a backend would issue them for Centrifugo.
import crypto from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256/384/512 token over CLAIMS with SECRET. */
export function hsToken(claims, secret, alg = 'HS256') {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const digest = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const sig = crypto.createHmac(digest, secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

/** An RS256 token over CLAIMS with the private key PRIVATE_PEM. */
export function rsToken(claims, privatePem) {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), privatePem);
  return `${head}.${body}.${b64url(sig)}`;
}

/** A fresh RSA key pair as PEM strings. */
export function rsaKeys() {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

export const now = () => Math.floor(Date.now() / 1000);
