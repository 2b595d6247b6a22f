import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.cql.AsyncResultSet;
import com.datastax.oss.driver.api.core.cql.BatchStatement;
import com.datastax.oss.driver.api.core.cql.BatchStatementBuilder;
import com.datastax.oss.driver.api.core.cql.DefaultBatchType;
import com.datastax.oss.driver.api.core.cql.PreparedStatement;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The JVM driver ceiling of bench/bench_peer.py: the feed rows, grouped by partition into UNLOGGED
 * batches of at most {@code batchRows} rows, sent asynchronously with {@code inFlight} batches
 * outstanding. Nothing else is done per row, so this is what this node takes from the best client
 * there is for it.
 *
 * <p>Rows come from a tab-separated file written by the bench (segment, bucket, user key, data bag
 * or \N, expires_at ms, command id, write timestamp, TTL). The bench measures this process's CPU
 * from /proc around the write phase only, so the process talks over stdin/stdout: it prints
 * {@code ready} after loading, connecting, preparing and one warm-up pass (the JIT compiled, as in
 * any long-running writer), waits for a line, groups, binds and writes every row, prints
 * {@code done <nanos> <batches>}, and exits when stdin closes.
 *
 * <p>Usage: {@code BatchedFeedWriter host port datacenter keyspace rows.tsv batchRows inFlight}
 */
public final class BatchedFeedWriter {
  private BatchedFeedWriter() {}

  private static final String CQL =
      "INSERT INTO %s.feed_by_segment (segment_id, bucket, user_key, data_bag, expires_at, "
          + "command_id) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?";

  /** One feed row, already typed for the driver's codecs. */
  private record Row(
      String segment,
      int bucket,
      String user,
      String dataBag,
      Instant expires,
      String commandId,
      long timestamp,
      int ttl) {}

  public static void main(String[] args) throws Exception {
    if (args.length != 7) {
      System.err.println(
          "usage: BatchedFeedWriter host port datacenter keyspace rows.tsv batchRows inFlight");
      System.exit(2);
    }
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    String datacenter = args[2];
    String keyspace = args[3];
    List<Row> rows = load(args[4]);
    int batchRows = Integer.parseInt(args[5]);
    int inFlight = Integer.parseInt(args[6]);
    BufferedReader control =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    try (CqlSession session =
        CqlSession.builder()
            .addContactPoint(new InetSocketAddress(host, port))
            .withLocalDatacenter(datacenter)
            .build()) {
      PreparedStatement insert = session.prepare(String.format(CQL, keyspace));
      // Warm-up: the first tenth of the rows (idempotent: same cells, same timestamps).
      send(session, batches(insert, rows.subList(0, Math.max(1, rows.size() / 10)), batchRows),
          inFlight);
      System.out.println("ready " + rows.size());
      System.out.flush();
      if (control.readLine() == null) {
        return;
      }
      long begin = System.nanoTime();
      // Grouping and binding are inside the measured phase: they are client work per row.
      List<BatchStatement> batches = batches(insert, rows, batchRows);
      send(session, batches, inFlight);
      long elapsed = System.nanoTime() - begin;
      System.out.println("done " + elapsed + " " + batches.size());
      System.out.flush();
      while (control.readLine() != null) {
        // wait for the bench to read this process's CPU, then exit on EOF
      }
    }
  }

  private static List<Row> load(String path) throws Exception {
    List<Row> rows = new ArrayList<>();
    for (String line : Files.readAllLines(Paths.get(path), StandardCharsets.UTF_8)) {
      if (line.isEmpty()) {
        continue;
      }
      String[] f = line.split("\t", -1);
      rows.add(
          new Row(
              f[0],
              Integer.parseInt(f[1]),
              f[2],
              "\\N".equals(f[3]) ? null : f[3],
              "\\N".equals(f[4]) ? null : Instant.ofEpochMilli(Long.parseLong(f[4])),
              f[5],
              Long.parseLong(f[6]),
              Integer.parseInt(f[7])));
    }
    return rows;
  }

  /** Rows of one partition together, in arrival order, at most {@code batchRows} per batch. */
  private static List<BatchStatement> batches(
      PreparedStatement insert, List<Row> rows, int batchRows) {
    Map<String, List<Row>> byPartition = new LinkedHashMap<>();
    for (Row row : rows) {
      byPartition.computeIfAbsent(row.segment() + "\u0000" + row.bucket(), k -> new ArrayList<>())
          .add(row);
    }
    List<BatchStatement> out = new ArrayList<>();
    for (List<Row> partition : byPartition.values()) {
      for (int start = 0; start < partition.size(); start += batchRows) {
        BatchStatementBuilder batch = BatchStatement.builder(DefaultBatchType.UNLOGGED);
        for (Row r : partition.subList(start, Math.min(start + batchRows, partition.size()))) {
          batch.addStatement(
              insert.bind(
                  r.segment(),
                  r.bucket(),
                  r.user(),
                  r.dataBag(),
                  r.expires(),
                  r.commandId(),
                  r.timestamp(),
                  r.ttl()));
        }
        out.add(batch.setIdempotence(true).build());
      }
    }
    return out;
  }

  /** Every batch, at most {@code inFlight} outstanding; the first failure aborts the run. */
  private static void send(CqlSession session, List<BatchStatement> batches, int inFlight)
      throws InterruptedException {
    Semaphore permits = new Semaphore(inFlight);
    AtomicReference<Throwable> failure = new AtomicReference<>();
    for (BatchStatement batch : batches) {
      permits.acquire();
      if (failure.get() != null) {
        break;
      }
      CompletionStage<AsyncResultSet> stage = session.executeAsync(batch);
      stage.whenComplete(
          (result, error) -> {
            if (error != null) {
              failure.compareAndSet(null, error);
            }
            permits.release();
          });
    }
    permits.acquire(inFlight);
    permits.release(inFlight);
    Throwable error = failure.get();
    if (error != null) {
      throw new IllegalStateException("a batch failed: " + error, error);
    }
  }
}
