package es9node;

import org.elasticsearch.cluster.ClusterName;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.KeyStoreWrapper;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.ClasspathNode;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.netty4.Netty4Plugin;
import org.elasticsearch.xpack.core.XPackPlugin;
import org.elasticsearch.xpack.security.Security;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Runs a single Elasticsearch 9 node in this JVM, its plugins taken from the class path.
 *
 * usage: java -cp "classes:lib/*" es9node.Es9Node NODE_DIR
 *
 * The node's settings are NODE_DIR/config/elasticsearch.yml (written by scripts/es); path.home is NODE_DIR. The
 * JVM's pid goes to NODE_DIR/es.pid. With -Des9node.bootstrapPassword=stdin the password of the reserved user
 * elastic (the keystore's bootstrap.password) is read from standard input; the node has no keystore file.
 */
public class Es9Node {
    /** The modules of the integ-test-zip, plus stand-ins for the parts of other modules they need. */
    static final List<Class<? extends Plugin>> PLUGINS = List.of(
        Netty4Plugin.class,
        XPackPlugin.class,
        Security.class,
        AnalysisStandInPlugin.class,
        RootPlugin.class
    );

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: es9node.Es9Node NODE_DIR");
            System.exit(2);
        }
        long t0 = System.nanoTime();
        Path home = Path.of(args[0]).toAbsolutePath();
        Path config = home.resolve("config");
        Path pidTmp = Files.writeString(home.resolve("es.pid.tmp"), ProcessHandle.current().pid() + "\n");
        Files.move(pidTmp, home.resolve("es.pid"), StandardCopyOption.ATOMIC_MOVE);
        writeLoggingConfig(config);

        Settings.Builder input = Settings.builder().put("path.home", home.toString());
        KeyStoreWrapper keystore = null;
        if ("stdin".equals(System.getProperty("es9node.bootstrapPassword"))) {
            keystore = KeyStoreWrapper.create();
            KeyStoreWrapper.addBootstrapSeed(keystore);
            keystore.setString("bootstrap.password", readPassword());
            input.setSecureSettings(keystore);
        }
        // Loads config/elasticsearch.yml on top of the input settings, as the distribution's launcher does.
        Environment env = InternalSettingsPreparer.prepareEnvironment(input.build(), Map.of(), config, () -> "es9node");
        LogConfigurator.registerErrorListener();
        LogConfigurator.setClusterName(ClusterName.CLUSTER_NAME_SETTING.get(env.settings()).value());
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env, true);

        final Node node;
        try {
            node = new ClasspathNode(env, PLUGINS);
            if (keystore != null) {
                keystore.close(); // secure settings are read during node construction only
            }
            node.start();
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1); // node threads must not keep a half-started JVM alive
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        }, "es9node-shutdown"));
        System.out.printf("node started in %d ms%n", (System.nanoTime() - t0) / 1_000_000);
        stopped.await();
    }

    /** Everything but the one trailing newline on standard input. */
    private static char[] readPassword() throws IOException {
        String s = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        if (s.endsWith("\n")) {
            s = s.substring(0, s.length() - 1);
        }
        if (s.isEmpty()) {
            throw new IllegalArgumentException("-Des9node.bootstrapPassword=stdin: no password on standard input");
        }
        return s.toCharArray();
    }

    /** Console logging, and deprecations as HTTP Warning headers (HeaderWarningAppender), unless present. */
    private static void writeLoggingConfig(Path config) throws IOException {
        Path log4j = config.resolve("log4j2.properties");
        if (Files.exists(log4j)) {
            return;
        }
        Files.createDirectories(config);
        Files.writeString(log4j, String.join("\n",
            "status = error",
            "appender.console.type = Console",
            "appender.console.name = console",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
            "rootLogger.level = info",
            "rootLogger.appenderRef.console.ref = console",
            "appender.header_warning.type = HeaderWarningAppender",
            "appender.header_warning.name = header_warning",
            "logger.deprecation.name = org.elasticsearch.deprecation",
            "logger.deprecation.level = WARN",
            "logger.deprecation.appenderRef.header_warning.ref = header_warning",
            "logger.deprecation.additivity = false",
            ""));
    }
}
