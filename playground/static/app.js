// The playground page: pick a simulated user and chat, talk to the bot, watch its replies arrive.
// Plain script, no build step. Everything the bot sends is put on the page with textContent and DOM
// nodes, never innerHTML: bot texts can contain user input.
"use strict";

(() => {
  const ACTION_SECONDS = 5;          // how long clients show "typing…" after sendChatAction
  const BUTTON_ANSWER_SECONDS = 15;  // how long a pressed button waits for answerCallbackQuery
  const TOAST_SECONDS = 3.5;
  const ACTION_TEXT = {
    typing: "is typing…",
    upload_photo: "is sending a photo…",
    upload_document: "is sending a file…",
    upload_video: "is sending a video…",
    record_video: "is recording a video…",
    record_voice: "is recording a voice message…",
    upload_voice: "is sending a voice message…",
    choose_sticker: "is choosing a sticker…",
    find_location: "is finding a location…",
    record_video_note: "is recording a video message…",
    upload_video_note: "is sending a video message…",
  };
  const SAFE_LINK = /^(https?:|tg:|mailto:)/i;
  // Where "you" can be: the location form starts at the first one.
  const PLACES = [
    { name: "Rome", latitude: 41.9028, longitude: 12.4964 },
    { name: "Paris", latitude: 48.8566, longitude: 2.3522 },
    { name: "Tokyo", latitude: 35.6762, longitude: 139.6503 },
    { name: "New York", latitude: 40.7128, longitude: -74.006 },
    { name: "Cape Town", latitude: -33.9249, longitude: 18.4241 },
  ];

  const $ = (id) => document.getElementById(id);
  const ui = {
    userSelect: $("user-select"),
    chatSelect: $("chat-select"),
    langSelect: $("lang-select"),
    title: $("chat-title"),
    subtitle: $("chat-subtitle"),
    avatar: $("chat-avatar"),
    conn: $("conn"),
    error: $("error"),
    errorText: $("error-text"),
    messages: $("messages"),
    empty: $("empty"),
    action: $("chat-action"),
    actionText: $("chat-action-text"),
    form: $("composer"),
    input: $("composer-input"),
    send: $("send-button"),
    fileInput: $("file-input"),
    attachment: $("attachment"),
    attachmentThumb: $("attachment-thumb"),
    attachmentName: $("attachment-name"),
    attachmentRemove: $("attachment-remove"),
    commandList: $("command-list"),
    locationButton: $("location-button"),
    locationPanel: $("location-panel"),
    locationPreset: $("location-preset"),
    locationLat: $("location-lat"),
    locationLon: $("location-lon"),
    locationShare: $("location-share"),
    replyKeyboard: $("reply-keyboard"),
    dropOverlay: $("drop-overlay"),
    toasts: $("toasts"),
  };

  const state = {
    bot: null,
    users: [],
    chats: [],
    commands: [],
    userId: null,
    chatId: null,
    rev: 0,
    nodes: new Map(),        // message key → element
    syncing: false,
    syncAgain: false,
    file: null,
    fileUrl: null,
    pendingButtons: new Map(), // callback query id → {button, timer}
    earlyAnswers: new Map(),   // answers that arrived before the press request returned
    actionTimer: null,
    sending: false,
    replyKeyboard: null,       // the reply keyboard the bot shows this user now (from the messages API)
    usedKeyboard: null,        // message id of a one-time keyboard already used, so it stays folded away
    // Whether the view follows new content. Only the reader's own scrolling changes it: content that grows
    // (an album's photos loading one after another) must not unpin a reader who was at the bottom.
    pinned: true,
  };

  // --- small helpers -------------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, options);
    } catch (err) {
      throw new Error("The playground server is not reachable. Is it still running?");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok || (body && body.ok === false)) {
      throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
    }
    return body;
  }

  function showError(message) {
    ui.errorText.textContent = message;
    ui.error.hidden = false;
  }

  function clearError() {
    ui.error.hidden = true;
    ui.errorText.textContent = "";
  }

  function toast(text, { alert = false } = {}) {
    const node = el("div", alert ? "toast toast-alert" : "toast", text);
    node.dataset.testid = "toast";
    node.setAttribute("role", "status");
    ui.toasts.append(node);
    const remove = () => node.remove();
    node.addEventListener("click", remove);
    setTimeout(remove, (alert ? 3 : 1) * TOAST_SECONDS * 1000);
  }

  function userById(id) {
    return state.users.find((u) => u.id === id) || null;
  }

  function chatById(id) {
    return state.chats.find((c) => c.id === id) || null;
  }

  function currentChat() {
    return chatById(state.chatId);
  }

  function chatLabel(chat) {
    if (chat.type === "private") return `${state.bot.first_name} (private chat)`;
    return `${chat.title} (group)`;
  }

  function hueFor(id) {
    return (Math.abs(Number(id)) * 47) % 360;
  }

  function formatTime(seconds) {
    const date = new Date(seconds * 1000);
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function formatBytes(size) {
    if (size < 1024) return `${size} B`;
    if (size < 1024 * 1024) return `${(size / 1024).toFixed(0)} KB`;
    return `${(size / 1024 / 1024).toFixed(1)} MB`;
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 120;
  }

  function scrollToBottom() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
    state.pinned = true;
  }

  // --- rich text: Telegram entities (offsets in UTF-16 units, which is what JS strings index) --------

  function renderText(text, entities, container) {
    const bounds = new Set([0, text.length]);
    for (const e of entities) {
      bounds.add(Math.max(0, Math.min(text.length, e.offset)));
      bounds.add(Math.max(0, Math.min(text.length, e.offset + e.length)));
    }
    const points = [...bounds].sort((a, b) => a - b);
    for (let i = 0; i < points.length - 1; i += 1) {
      const start = points[i];
      const end = points[i + 1];
      const piece = text.slice(start, end);
      const active = entities.filter((e) => e.offset <= start && e.offset + e.length >= end);
      container.append(styledPiece(piece, active));
    }
  }

  function styledPiece(piece, active) {
    if (!active.length) return document.createTextNode(piece);
    let node = el("span", "", piece);
    for (const e of active) {
      node.classList.add(`ent-${e.type}`);
      if (e.type === "pre" || e.type === "code") {
        const code = el(e.type === "pre" ? "pre" : "code");
        code.append(node);
        node = code;
      } else if ((e.type === "text_link" || e.type === "url") && SAFE_LINK.test(e.url || piece)) {
        const link = el("a");
        link.href = e.url || piece;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.append(node);
        node = link;
      } else if (e.type === "bot_command") {
        node.setAttribute("role", "button");
        node.tabIndex = 0;
        node.title = `Send ${piece}`;
        node.addEventListener("click", () => sendText(piece));
      } else if (e.type === "spoiler") {
        node.addEventListener("click", () => node.classList.add("revealed"));
      }
    }
    return node;
  }

  // --- rendering messages --------------------------------------------------------------------------

  function renderPhoto(photo, { withCaption }) {
    const figure = el("figure", withCaption ? "album-item" : "single-photo");
    figure.dataset.testid = withCaption ? "album-item" : "photo";
    const link = el("a", "photo-link");
    link.href = photo.full;
    link.target = "_blank";
    link.rel = "noopener";
    const img = el("img", "photo");
    img.src = photo.src;
    img.alt = photo.caption || "Photo";
    img.width = photo.width;
    img.height = photo.height;
    img.loading = "lazy";
    img.addEventListener("load", () => {
      if (state.pinned) scrollToBottom();
    });
    link.append(img);
    figure.append(link);
    if (withCaption && photo.caption) {
      const caption = el("figcaption", "caption");
      caption.dataset.testid = "caption";
      renderText(photo.caption, photo.caption_entities || [], caption);
      figure.append(caption);
    }
    return figure;
  }

  function renderKeyboard(view) {
    const keyboard = el("div", "keyboard");
    keyboard.dataset.testid = "keyboard";
    for (const row of view.keyboard) {
      const rowNode = el("div", "keyboard-row");
      for (const button of row) {
        let node;
        if (button.callback_data !== null && button.callback_data !== undefined) {
          node = el("button", "keyboard-button", button.text);
          node.type = "button";
          node.dataset.callbackData = button.callback_data;
          node.addEventListener("click", () => pressButton(view.message_id, button.callback_data, node));
        } else {
          node = el("a", "keyboard-button keyboard-link", `${button.text} ↗`);
          if (SAFE_LINK.test(button.url || "")) node.href = button.url;
          node.target = "_blank";
          node.rel = "noopener noreferrer";
        }
        node.dataset.testid = "keyboard-button";
        rowNode.append(node);
      }
      keyboard.append(rowNode);
    }
    return keyboard;
  }

  function formatCoordinates(latitude, longitude) {
    const part = (value, positive, negative) => `${Math.abs(value).toFixed(4)}° ${value >= 0 ? positive : negative}`;
    return `${part(latitude, "N", "S")}, ${part(longitude, "E", "W")}`;
  }

  function renderPlace(place) {
    // A venue (title, address) or a bare location; the map is only a link, nothing is fetched.
    const card = el("div", "place");
    card.dataset.testid = "place";
    const title = el("div", "place-title", `📍 ${place.title || "Location"}`);
    title.dataset.testid = "place-title";
    card.append(title);
    if (place.address) {
      const address = el("div", "place-address", place.address);
      address.dataset.testid = "place-address";
      card.append(address);
    }
    card.append(el("div", "place-coords", formatCoordinates(place.latitude, place.longitude)));
    const link = el("a", "place-link", "open in OpenStreetMap ↗");
    link.dataset.testid = "place-link";
    if (SAFE_LINK.test(place.map_url)) link.href = place.map_url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    card.append(link);
    return card;
  }

  function renderMessage(view) {
    const chat = currentChat();
    const mine = view.from === "user" && view.sender.id === state.userId;
    const row = el("div", `msg msg-${view.from}${mine ? " msg-mine" : ""}`);
    row.dataset.testid = "message";
    row.dataset.from = view.from;
    row.dataset.kind = view.kind;
    row.dataset.messageId = String(view.message_id);
    row.dataset.seq = String(view.seq);

    if (!mine) {
      const avatar = el("div", view.from === "bot" ? "avatar bot-avatar" : "avatar", view.sender.name.slice(0, 1));
      if (view.from !== "bot") avatar.style.setProperty("--hue", hueFor(view.sender.id));
      avatar.setAttribute("aria-hidden", "true");
      row.append(avatar);
    }

    const column = el("div", "msg-column");
    const bubble = el("div", "bubble");
    if (view.photos.length > 1) bubble.classList.add("bubble-album");
    else if (view.photos.length === 1) bubble.classList.add("bubble-photo");

    if (!mine && chat && chat.type !== "private") {
      const name = el("div", "sender", view.sender.name);
      if (view.from !== "bot") name.style.setProperty("--hue", hueFor(view.sender.id));
      bubble.append(name);
    }
    if (view.reply_to) {
      const quote = el("div", "reply-quote");
      quote.append(el("div", "reply-sender", view.reply_to.sender), el("div", "reply-snippet", view.reply_to.snippet));
      bubble.append(quote);
    }
    if (view.photos.length > 1) {
      const grid = el("div", `album album-${Math.min(view.photos.length, 10)}`);
      grid.dataset.testid = "album";
      for (const photo of view.photos) grid.append(renderPhoto(photo, { withCaption: true }));
      bubble.append(grid);
    } else if (view.photos.length === 1) {
      bubble.append(renderPhoto(view.photos[0], { withCaption: false }));
    }
    if (view.sticker) {
      const sticker = el("img", "sticker");
      sticker.src = view.sticker.src;
      sticker.alt = "Sticker";
      bubble.classList.add("bubble-sticker");
      bubble.append(sticker);
    }
    if (view.document) {
      const doc = el("a", "document");
      doc.href = view.document.href;
      doc.target = "_blank";
      doc.rel = "noopener";
      doc.append(el("span", "document-icon", "📄"), el("span", "document-name", view.document.name),
        el("span", "document-size", formatBytes(view.document.size)));
      bubble.append(doc);
    }
    if (view.place) bubble.append(renderPlace(view.place));
    const body = view.text ?? (view.photos.length > 1 ? null : view.caption);
    if (body) {
      const text = el("div", view.text !== null ? "text" : "text caption");
      text.dataset.testid = view.text !== null ? "message-text" : "caption";
      renderText(body, (view.text !== null ? view.entities : view.caption_entities) || [], text);
      bubble.append(text);
    }
    const meta = el("div", "meta");
    if (view.edited) meta.append(el("span", "edited", "edited"));
    meta.append(el("span", "time", formatTime(view.date)));
    bubble.append(meta);
    column.append(bubble);

    if (view.keyboard.length) column.append(renderKeyboard(view));
    if (!view.delivered) {
      const note = el("div", "undelivered", "Not delivered to the bot (group privacy mode: use a /command or mention it)");
      note.dataset.testid = "undelivered";
      column.append(note);
    }
    row.append(column);
    return row;
  }

  function upsert(view) {
    const key = String(view.key);
    const existing = state.nodes.get(key);
    if (view.deleted) {
      if (existing) existing.remove();
      state.nodes.delete(key);
      return false;
    }
    const node = renderMessage(view);
    if (existing) {
      existing.replaceWith(node);
    } else {
      const later = [...ui.messages.querySelectorAll(".msg")].find((n) => Number(n.dataset.seq) > view.seq);
      ui.messages.insertBefore(node, later || null);
    }
    state.nodes.set(key, node);
    return !existing;
  }

  // --- talking to the server -----------------------------------------------------------------------

  async function syncMessages() {
    if (state.chatId === null) return;
    if (state.syncing) {
      state.syncAgain = true;
      return;
    }
    state.syncing = true;
    const chatId = state.chatId;
    try {
      const data = await api(`/api/chats/${chatId}/messages?since=${state.rev}&user_id=${state.userId}`);
      if (chatId !== state.chatId) return;
      renderReplyKeyboard(data.reply_keyboard);
      const stick = state.pinned;
      let newBotMessage = false;
      let newOwnMessage = false;
      for (const view of data.messages) {
        const added = upsert(view);
        if (added && view.from === "bot") newBotMessage = true;
        if (added && view.from === "user" && view.sender.id === state.userId) newOwnMessage = true;
      }
      state.rev = data.rev;
      ui.empty.hidden = state.nodes.size > 0;
      if (newBotMessage) hideAction();
      else if (data.action) showAction(data.action);
      if (stick || newOwnMessage) scrollToBottom();
    } catch (err) {
      showError(err.message);
    } finally {
      state.syncing = false;
      if (state.syncAgain) {
        state.syncAgain = false;
        syncMessages();
      }
    }
  }

  async function loadState() {
    const data = await api("/api/state");
    state.bot = data.bot;
    state.users = data.users;
    state.chats = data.chats;
    state.commands = data.commands || [];
  }

  function renderPickers() {
    ui.userSelect.replaceChildren(...state.users.map((u) => {
      const option = el("option", "", u.first_name);
      option.value = String(u.id);
      if (u.username) option.title = `@${u.username}`;
      return option;
    }));
    if (!userById(state.userId)) state.userId = state.users.length ? state.users[0].id : null;
    ui.userSelect.value = String(state.userId);
    renderLanguage();
    const chats = state.chats.filter((c) => c.members.includes(state.userId));
    ui.chatSelect.replaceChildren(...chats.map((c) => {
      const option = el("option", "", chatLabel(c));
      option.value = String(c.id);
      return option;
    }));
    if (!chats.some((c) => c.id === state.chatId)) state.chatId = chats.length ? chats[0].id : null;
    ui.chatSelect.value = String(state.chatId);
    const disabled = state.chatId === null;
    ui.input.disabled = disabled;
    ui.send.disabled = disabled;
    if (!state.users.length) {
      ui.title.textContent = "No simulated users";
      ui.subtitle.textContent = "Create users and chats on the stand-in to start";
    }
  }

  function renderHeader() {
    const chat = currentChat();
    if (!chat || !state.bot) return;
    if (chat.type === "private") {
      ui.title.textContent = state.bot.first_name;
      ui.subtitle.textContent = `@${state.bot.username} · bot`;
      ui.avatar.textContent = state.bot.first_name.slice(0, 1);
      ui.avatar.className = "avatar bot-avatar";
    } else {
      const names = chat.members.map((id) => (userById(id) || { first_name: "?" }).first_name);
      ui.title.textContent = chat.title;
      ui.subtitle.textContent = `${chat.members.length + 1} members: ${names.join(", ")}, ${state.bot.first_name}`;
      ui.avatar.textContent = chat.title.slice(0, 1);
      ui.avatar.className = "avatar group-avatar";
    }
    document.title = `${ui.title.textContent} · Wanderlens playground`;
  }

  async function openChat() {
    ui.toasts.replaceChildren();
    state.rev = 0;
    state.nodes.clear();
    ui.messages.querySelectorAll(".msg").forEach((n) => n.remove());
    ui.empty.hidden = false;
    hideAction();
    renderReplyKeyboard(null);
    renderHeader();
    const params = new URLSearchParams({ user: state.userId ?? "", chat: state.chatId ?? "" });
    history.replaceState(null, "", `?${params}`);
    await syncMessages();
    scrollToBottom();
  }

  async function sendText(text) {
    const form = new FormData();
    form.append("user_id", String(state.userId));
    form.append("text", text);
    await submit(form);
  }

  async function submit(form) {
    if (state.chatId === null) return false;
    state.sending = true;
    ui.send.disabled = true;
    ui.form.classList.add("sending");
    try {
      await api(`/api/chats/${state.chatId}/send`, { method: "POST", body: form });
      clearError();
      await syncMessages();
      scrollToBottom();
      return true;
    } catch (err) {
      showError(err.message);
      return false;
    } finally {
      state.sending = false;
      ui.send.disabled = false;
      ui.form.classList.remove("sending");
    }
  }

  async function sendComposer() {
    if (state.sending) return;
    const text = ui.input.value.trim();
    if (!text && !state.file) {
      ui.input.focus();
      return;
    }
    const form = new FormData();
    form.append("user_id", String(state.userId));
    form.append("text", text);
    if (state.file) form.append("photo", state.file, state.file.name || "photo.jpg");
    const ok = await submit(form);
    if (ok) {
      ui.input.value = "";
      setAttachment(null);
      autosize();
      hideCommands();
    }
    ui.input.focus();
  }

  // --- locations and reply keyboards -----------------------------------------------------------------

  function setLocationFields(place) {
    ui.locationLat.value = String(place.latitude);
    ui.locationLon.value = String(place.longitude);
  }

  function bindLocation() {
    ui.locationPreset.replaceChildren(...PLACES.map((place, index) => {
      const option = el("option", "", place.name);
      option.value = String(index);
      return option;
    }), el("option", "", "Custom"));
    ui.locationPreset.lastChild.value = "custom";
    setLocationFields(PLACES[0]);
    ui.locationPreset.addEventListener("change", () => {
      const place = PLACES[Number(ui.locationPreset.value)];
      if (place) setLocationFields(place);
    });
    const typed = () => { ui.locationPreset.value = "custom"; };
    ui.locationLat.addEventListener("input", typed);
    ui.locationLon.addEventListener("input", typed);
    ui.locationButton.addEventListener("click", () => {
      ui.locationPanel.hidden = !ui.locationPanel.hidden;
    });
    $("location-close").addEventListener("click", () => { ui.locationPanel.hidden = true; });
    ui.locationShare.addEventListener("click", async () => {
      if (await shareLocation()) ui.locationPanel.hidden = true;
    });
  }

  async function shareLocation() {
    // The form's place (Rome unless changed) stands in for the device's position.
    const latitude = ui.locationLat.value.trim();
    const longitude = ui.locationLon.value.trim();
    if (!latitude || !longitude || state.chatId === null) {
      showError("Pick a place or type a latitude and a longitude first");
      return false;
    }
    try {
      await api(`/api/chats/${state.chatId}/location`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ user_id: state.userId, latitude: Number(latitude), longitude: Number(longitude) }),
      });
      clearError();
      await syncMessages();
      scrollToBottom();
      return true;
    } catch (err) {
      showError(err.message);
      return false;
    }
  }

  function renderReplyKeyboard(keyboard) {
    state.replyKeyboard = keyboard;
    const shown = keyboard && keyboard.message_id !== state.usedKeyboard;
    ui.replyKeyboard.hidden = !shown;
    if (!shown) {
      ui.replyKeyboard.replaceChildren();
      return;
    }
    ui.replyKeyboard.classList.toggle("resized", keyboard.resize);
    ui.replyKeyboard.replaceChildren(...keyboard.rows.map((row) => {
      const rowNode = el("div", "keyboard-row");
      for (const button of row) {
        const node = el("button", "keyboard-button reply-keyboard-button", button.text);
        node.type = "button";
        node.dataset.testid = "reply-keyboard-button";
        if (button.request) node.dataset.request = button.request;
        if (button.request === "location") node.title = "Shares the place set under 📍 (Rome unless you changed it)";
        node.addEventListener("click", () => pressReplyButton(keyboard, button));
        rowNode.append(node);
      }
      return rowNode;
    }));
  }

  async function pressReplyButton(keyboard, button) {
    // Like a Telegram client: a text button sends its text, a location button shares where you are.
    if (button.request && button.request !== "location") {
      toast(`The playground cannot send a ${button.request.replace("_", " ")} from a button.`, { alert: true });
      return;
    }
    if (keyboard.one_time) {
      state.usedKeyboard = keyboard.message_id;
      renderReplyKeyboard(keyboard);
    }
    if (button.request === "location") await shareLocation();
    else await sendText(button.text);
  }

  async function pressButton(messageId, data, button) {
    if (button.classList.contains("pending")) return;
    button.classList.add("pending");
    try {
      const result = await api(`/api/chats/${state.chatId}/press`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ user_id: state.userId, message_id: messageId, callback_data: data }),
      });
      const early = state.earlyAnswers.get(result.callback_query_id);
      if (early) {
        state.earlyAnswers.delete(result.callback_query_id);
        button.classList.remove("pending");
        if (early.text) toast(early.text, { alert: early.show_alert });
        return;
      }
      const timer = setTimeout(() => {
        state.pendingButtons.delete(result.callback_query_id);
        button.classList.remove("pending");
        toast("The bot did not answer this button (Telegram keeps a spinner until it does).", { alert: true });
      }, BUTTON_ANSWER_SECONDS * 1000);
      state.pendingButtons.set(result.callback_query_id, { button, timer });
    } catch (err) {
      button.classList.remove("pending");
      showError(err.message);
    }
  }

  function onCallbackAnswer(answer) {
    const pending = state.pendingButtons.get(answer.id);
    if (!pending) {
      // The bot can answer before our press request has returned; keep it for pressButton.
      if (answer.user_id === state.userId) state.earlyAnswers.set(answer.id, answer);
      return;
    }
    clearTimeout(pending.timer);
    pending.button.classList.remove("pending");
    state.pendingButtons.delete(answer.id);
    if (answer.text) toast(answer.text, { alert: answer.show_alert });
  }

  // --- chat actions ("typing…") --------------------------------------------------------------------

  function showAction(action) {
    const name = state.bot ? state.bot.first_name : "The bot";
    ui.actionText.textContent = `${name} ${ACTION_TEXT[action] || "is busy…"}`;
    ui.action.hidden = false;
    clearTimeout(state.actionTimer);
    state.actionTimer = setTimeout(hideAction, ACTION_SECONDS * 1000);
  }

  function hideAction() {
    clearTimeout(state.actionTimer);
    ui.action.hidden = true;
  }

  // --- live updates (Server-Sent Events) -----------------------------------------------------------

  function connectEvents() {
    const source = new EventSource("/api/events");
    let lostTimer = null;
    source.addEventListener("open", () => {
      clearTimeout(lostTimer);
      ui.conn.className = "conn live";
      ui.conn.title = "Live updates: connected";
      if (ui.errorText.textContent.startsWith("Lost connection")) clearError();
      syncMessages();  // catch up on anything missed while disconnected
    });
    source.addEventListener("error", () => {
      ui.conn.className = "conn offline";
      ui.conn.title = "Live updates: reconnecting";
      clearTimeout(lostTimer);
      lostTimer = setTimeout(() => showError("Lost connection to the playground; retrying…"), 3000);
    });
    source.addEventListener("chat", (event) => {
      const data = JSON.parse(event.data);
      if (data.chat_id === state.chatId && data.rev > state.rev) syncMessages();
    });
    source.addEventListener("action", (event) => {
      const data = JSON.parse(event.data);
      if (data.chat_id === state.chatId) showAction(data.action);
    });
    source.addEventListener("callback_answer", (event) => onCallbackAnswer(JSON.parse(event.data)));
    source.addEventListener("cast", async () => {
      await loadState();
      renderPickers();
      renderHeader();
    });
  }

  // --- composer: text, commands, photo attachment, drag and drop ------------------------------------

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
  }

  function setAttachment(file) {
    if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
    state.file = file;
    state.fileUrl = null;
    ui.fileInput.value = "";
    if (!file) {
      ui.attachment.hidden = true;
      ui.input.placeholder = "Message or /command";
      return;
    }
    if (file.type.startsWith("image/")) {
      state.fileUrl = URL.createObjectURL(file);
      ui.attachmentThumb.src = state.fileUrl;
      ui.attachmentThumb.hidden = false;
    } else {
      ui.attachmentThumb.removeAttribute("src");
      ui.attachmentThumb.hidden = true;
    }
    ui.attachmentName.textContent = `${file.name || "photo"} · ${formatBytes(file.size)}`;
    ui.attachment.hidden = false;
    ui.input.placeholder = "Add a caption (optional)";
    ui.input.focus();
  }

  async function updateCommands() {
    const text = ui.input.value;
    if (!text.startsWith("/") || text.includes(" ")) {
      hideCommands();
      return;
    }
    if (text === "/") {
      try {
        await loadState();
      } catch (err) {
        return;
      }
    }
    const matches = state.commands.filter((c) => `/${c.command}`.startsWith(text.toLowerCase()));
    if (!matches.length) {
      hideCommands();
      return;
    }
    ui.commandList.replaceChildren(...matches.map((c) => {
      const item = el("button", "command-item");
      item.type = "button";
      item.dataset.testid = "command-item";
      item.append(el("span", "command-name", `/${c.command}`), el("span", "command-description", c.description));
      item.addEventListener("click", () => {
        ui.input.value = `/${c.command}`;
        hideCommands();
        ui.input.focus();
      });
      return item;
    }));
    ui.commandList.hidden = false;
  }

  function hideCommands() {
    ui.commandList.hidden = true;
  }

  function bindComposer() {
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      sendComposer();
    });
    ui.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendComposer();
      } else if (event.key === "Escape") {
        hideCommands();
      }
    });
    ui.input.addEventListener("input", () => {
      autosize();
      updateCommands();
    });
    ui.fileInput.addEventListener("change", () => {
      if (ui.fileInput.files && ui.fileInput.files[0]) setAttachment(ui.fileInput.files[0]);
    });
    ui.attachmentRemove.addEventListener("click", () => setAttachment(null));
    $("error-close").addEventListener("click", clearError);

    let dragDepth = 0;
    const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
    window.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      dragDepth += 1;
      ui.dropOverlay.hidden = false;
    });
    window.addEventListener("dragleave", () => {
      dragDepth = Math.max(0, dragDepth - 1);
      if (!dragDepth) ui.dropOverlay.hidden = true;
    });
    window.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    window.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth = 0;
      ui.dropOverlay.hidden = true;
      const file = event.dataTransfer.files[0];
      if (file) setAttachment(file);
    });
  }

  function renderLanguage() {
    const user = userById(state.userId);
    const code = (user && user.language_code) || "en";
    // A user created with a language the menu does not list still shows it.
    if (![...ui.langSelect.options].some((o) => o.value === code)) ui.langSelect.append(el("option", "", code));
    ui.langSelect.value = code;
    ui.langSelect.disabled = !user;
  }

  async function setLanguage() {
    try {
      const result = await api(`/api/users/${state.userId}/language`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ language_code: ui.langSelect.value }),
      });
      const user = userById(state.userId);
      if (user) user.language_code = result.user.language_code;
    } catch (err) {
      showError(err.message);
      renderLanguage();
    }
  }

  function bindPickers() {
    ui.langSelect.addEventListener("change", setLanguage);
    ui.userSelect.addEventListener("change", async () => {
      state.userId = Number(ui.userSelect.value);
      const keep = state.chatId;
      renderPickers();
      if (state.chatId !== keep) await openChat();
      else {
        renderHeader();
        // Same chat, other viewer: redraw so "mine" bubbles switch sides.
        await openChat();
      }
    });
    ui.chatSelect.addEventListener("change", async () => {
      state.chatId = Number(ui.chatSelect.value);
      await openChat();
    });
  }

  async function init() {
    bindComposer();
    bindPickers();
    bindLocation();
    // Only the reader unpins the view: a scroll the layout causes (photos loading, the composer or a reply
    // keyboard changing height) fires "scroll" too, and must not stop the view following new messages.
    // -Infinity, not 0: performance.now() counts from the page's load, so 0 would read as "the reader scrolled
    // just now" for the page's first second, and a photo loading then would unpin the view.
    let readerScrolledAt = -Infinity;
    for (const type of ["wheel", "touchmove", "keydown", "pointerdown"]) {
      ui.messages.addEventListener(type, () => { readerScrolledAt = performance.now(); }, { passive: true });
    }
    ui.messages.addEventListener("scroll", () => {
      if (nearBottom()) state.pinned = true;
      else if (performance.now() - readerScrolledAt < 1000) state.pinned = false;
    });
    // The list's own height changes too (the composer growing, a reply keyboard appearing): a pinned view
    // keeps its last message in sight.
    new ResizeObserver(() => {
      if (state.pinned) scrollToBottom();
    }).observe(ui.messages);
    try {
      await loadState();
    } catch (err) {
      showError(err.message);
      ui.subtitle.textContent = "offline";
      return;
    }
    const params = new URLSearchParams(location.search);
    state.userId = Number(params.get("user")) || null;
    state.chatId = Number(params.get("chat")) || null;
    renderPickers();
    connectEvents();
    await openChat();
    document.body.dataset.ready = "true";
  }

  init();
})();
