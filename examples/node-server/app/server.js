// A tiny HTTP server, as in the swarm post this project started from: it answers every
// request with its host name, so `curl` against a scaled service shows which replica
// answered, and /health for the orchestrator's health check.
const http = require("http");
const os = require("os");

const port = Number(process.env.PORT || 80);

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok\n");
    return;
  }
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`Hello from ${os.hostname()}\n`);
});

server.listen(port, () => console.log(`listening on ${port}`));

// Stop promptly on `docker stop` / a swarm update.
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
