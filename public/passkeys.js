/*
 * Passkeys on the bank's pages: "Sign in with a passkey" on the sign-in page and "Add a passkey"
 * in the Security section. Served as a file because the CSP forbids inline script; the pages work
 * without it, it only reveals what needs WebAuthn. WebAuthn takes bytes, the server speaks
 * base64url JSON, so this converts between the two and relays the ceremonies.
 */
/* global window, document, navigator, fetch, location, atob, btoa */
(function () {
  'use strict';

  if (window.passbookPasskeys) return;
  window.passbookPasskeys = true;

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
    var binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function fromBytes(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = '';
    for (var i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function withIds(descriptors) {
    return (descriptors || []).map(function (descriptor) {
      return Object.assign({}, descriptor, { id: toBytes(descriptor.id) });
    });
  }

  function creationOptions(options) {
    return Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      user: Object.assign({}, options.user, { id: toBytes(options.user.id) }),
      excludeCredentials: withIds(options.excludeCredentials),
    });
  }

  function requestOptions(options) {
    return Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      allowCredentials: withIds(options.allowCredentials),
    });
  }

  function credentialJson(credential, response) {
    return {
      id: credential.id,
      rawId: fromBytes(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: response,
    };
  }

  function registrationJson(credential) {
    var response = credential.response;
    return credentialJson(credential, {
      clientDataJSON: fromBytes(response.clientDataJSON),
      attestationObject: fromBytes(response.attestationObject),
      transports: typeof response.getTransports === 'function' ? response.getTransports() : [],
    });
  }

  function assertionJson(credential) {
    var response = credential.response;
    return credentialJson(credential, {
      clientDataJSON: fromBytes(response.clientDataJSON),
      authenticatorData: fromBytes(response.authenticatorData),
      signature: fromBytes(response.signature),
      userHandle: response.userHandle ? fromBytes(response.userHandle) : undefined,
    });
  }

  function call(url, csrf, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body),
    }).then(function (answer) {
      return answer.json().then(function (json) {
        if (!answer.ok) throw new Error(json.message || 'Something went wrong. Try again.');
        return json;
      });
    });
  }

  function explain(error) {
    // The browser's own errors say nothing a customer can act on.
    if (error && (error.name === 'NotAllowedError' || error.name === 'AbortError')) {
      return 'The passkey was not used. Try again when you are ready.';
    }
    if (error && error.name === 'InvalidStateError') return 'This device already has a passkey for you.';
    if (error && error.name && error.name !== 'Error') return 'Your browser could not use a passkey here.';
    return (error && error.message) || 'Something went wrong. Try again.';
  }

  function relay(root, button, ceremony) {
    var message = root.querySelector('[data-passkey-message]');
    button.disabled = true;
    message.hidden = true;
    ceremony()
      .then(function (result) {
        location.assign(result.redirectTo);
      })
      .catch(function (error) {
        message.textContent = explain(error);
        message.hidden = false;
        button.disabled = false;
      });
  }

  function setUpSignIn(root) {
    var endpoint = root.getAttribute('data-passkey-sign-in');
    var csrf = root.getAttribute('data-csrf');
    var button = root.querySelector('button');
    button.addEventListener('click', function () {
      relay(root, button, function () {
        return call(endpoint + '/options', csrf, {})
          .then(function (options) {
            return navigator.credentials.get({ publicKey: requestOptions(options) });
          })
          .then(function (credential) {
            return call(endpoint, csrf, { credential: assertionJson(credential) });
          });
      });
    });
    root.hidden = false;
  }

  function setUpRegistration(form) {
    var endpoint = form.getAttribute('data-passkey-register');
    var csrf = form.getAttribute('data-csrf');
    var button = form.querySelector('button');
    var nameField = form.querySelector('input[name="name"]');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var name = nameField.value.trim();
      relay(form, button, function () {
        return call(endpoint + '/options', csrf, { name: name })
          .then(function (options) {
            return navigator.credentials.create({ publicKey: creationOptions(options) });
          })
          .then(function (credential) {
            return call(endpoint, csrf, { name: name, credential: registrationJson(credential) });
          });
      });
    });
    form.hidden = false;
  }

  function start() {
    var supported = Boolean(window.PublicKeyCredential && navigator.credentials && navigator.credentials.get);
    if (!supported) return;
    document.querySelectorAll('[data-passkey-sign-in]').forEach(setUpSignIn);
    document.querySelectorAll('[data-passkey-register]').forEach(setUpRegistration);
    document.querySelectorAll('[data-passkey-unsupported]').forEach(function (note) {
      note.hidden = true;
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
