// /live: the community live feed. New posts (`liveFeed`) appear as they are published; a
// post's new comments (`commentAdded`) when the reader follows it; and, signed in, replies to
// the reader's posts and comments (`repliesToMe`).
import { Live, connectionBadge, h, request, signInBox, token, when } from "./kameng.js";

const POST_FIELDS = `id kind title body createdAt commentCount likeCount author { nickname } topics { slug }`;
const COMMENT_FIELDS = `id body createdAt author { nickname } post { id title }`;
const LATEST = `query Latest($topic: String) { feed(kind: LATEST, first: 20, topic: $topic) { edges { node { ${POST_FIELDS} } } } }`;
const FEED = `subscription Feed($topic: String) { liveFeed(topic: $topic) { ${POST_FIELDS} } }`;
const COMMENTS = `subscription Comments($postId: ID!) { commentAdded(postId: $postId) { ${COMMENT_FIELDS} } }`;
const REPLIES = `subscription Replies { repliesToMe { ${COMMENT_FIELDS} } }`;

const $ = (id) => document.getElementById(id);
const topic = new URLSearchParams(location.search).get("topic") || null;
const live = new Live(connectionBadge($("connection")));
let stops = [];

function showProblem(message) {
  $("problem").textContent = message;
}

function excerpt(text, size = 280) {
  return text.length > size ? `${text.slice(0, size)}…` : text;
}

function commentItem(comment) {
  return h("li", { class: "comment", "data-comment": comment.id },
    h("strong", {}, comment.author?.nickname || "someone"), ` ${when(comment.createdAt)}: `, excerpt(comment.body));
}

function postCard(post, fresh) {
  const comments = h("ul", { class: "comments" });
  const follow = h("button", { type: "button", class: "follow" }, "Follow comments");
  follow.addEventListener("click", () => {
    follow.disabled = true;
    follow.textContent = "Following comments";
    stops.push(live.subscribe(COMMENTS, { postId: post.id }, {
      next: ({ commentAdded }) => {
        if (!comments.querySelector(`[data-comment="${CSS.escape(commentAdded.id)}"]`)) comments.append(commentItem(commentAdded));
      },
      error: (err) => showProblem(err.message),
    }));
  });
  return h("article", { class: fresh ? "post fresh" : "post", "data-post": post.id },
    h("header", {},
      h("span", { class: "kind" }, post.kind), " ",
      h("h3", {}, post.title)),
    h("p", { class: "meta" }, `${post.author?.nickname || "someone"} · ${when(post.createdAt)}`,
      post.topics.length ? ` · ${post.topics.map((t) => `#${t.slug}`).join(" ")}` : ""),
    h("p", { class: "body" }, excerpt(post.body)),
    h("footer", {}, follow, ` ${post.commentCount} comments · ${post.likeCount} likes`),
    comments);
}

function addPost(post, fresh) {
  const feed = $("feed");
  if (feed.querySelector(`[data-post="${CSS.escape(post.id)}"]`)) return;
  if (fresh) feed.prepend(postCard(post, true));
  else feed.append(postCard(post, false));
  $("empty").hidden = true;
}

async function start() {
  stops.forEach((stop) => stop());
  stops = [];
  // Subscribe first, then read the latest page: a post published in between is not lost
  // (addPost ignores the one that arrives both ways).
  stops.push(live.subscribe(FEED, { topic }, {
    next: ({ liveFeed }) => addPost(liveFeed, true),
    error: (err) => showProblem(err.message),
  }));
  $("replies-box").hidden = !token.get();
  $("replies").replaceChildren();
  if (token.get()) {
    stops.push(live.subscribe(REPLIES, {}, {
      next: ({ repliesToMe }) => {
        $("replies").prepend(h("li", { class: "reply fresh", "data-comment": repliesToMe.id },
          h("strong", {}, repliesToMe.author?.nickname || "someone"), " on ",
          h("em", {}, repliesToMe.post?.title || "a post"), `: ${excerpt(repliesToMe.body)}`));
      },
      error: (err) => showProblem(err.message),
    }));
  }
  try {
    const { feed } = await request(LATEST, { topic });
    feed.edges.forEach((edge) => addPost(edge.node, false));
  } catch (err) {
    showProblem(err.message);
  }
}

if (topic) $("topic").textContent = `#${topic}`;
signInBox($("signin"), () => {
  live.restart();
  $("feed").replaceChildren();
  $("empty").hidden = false;
  start();
});
start();
